package certs

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"path"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// ClientOptions is a client certificate wanted.
type ClientOptions struct {
	Paths Paths
	Name  string
	// OutDir replaces Paths.ClientDir/Name. Files there belong to the caller
	// rather than root, and an existing folder keeps its owner and mode.
	OutDir string
	// Out, when set, is the System OutDir is written through: the caller's
	// own files are not under --root (system.OnHost). Default: sys.
	Out system.System
	// KeyType empty keeps an existing certificate's type (rsa-2048 if new).
	KeyType     pki.KeyType
	Days        int
	RenewBefore int
	// P12, when set, also writes NAME.p12 protected by Password.
	P12      bool
	Password string
	Rand     io.Reader
}

// ClientFiles are where a client's files go.
type ClientFiles struct {
	Dir, Cert, Key, CA, P12 string
}

// ClientFilesIn names the files of client name in dir.
func ClientFilesIn(dir, name string) ClientFiles {
	return ClientFiles{
		Dir:  dir,
		Cert: path.Join(dir, name+".crt"),
		Key:  path.Join(dir, name+".key"),
		CA:   path.Join(dir, "ca.crt"),
		P12:  path.Join(dir, name+".p12"),
	}
}

// EnsureClient makes a client certificate for mutual TLS (CN=Name), with
// its key, the CA certificate and optionally a PKCS#12 bundle for phones.
// Kept when it chains to the CA, matches its key, has the right CN and key
// type and more than RenewBefore days left.
func EnsureClient(sys system.System, o ClientOptions) (Result, error) {
	var res Result
	if o.Days == 0 {
		o.Days = pki.ClientDays
	}
	if err := pki.ValidateClientName("NAME", o.Name); err != nil {
		return res, err
	}
	if err := pki.CheckDays("--days", o.Days, pki.MaxClientDays); err != nil {
		return res, err
	}
	if err := checkRenewWindow(o.RenewBefore, o.Days); err != nil {
		return res, err
	}
	ca, err := LoadCA(sys, o.Paths)
	if err != nil {
		return res, err
	}
	dir := o.OutDir
	owned := dir == ""
	if owned {
		dir = path.Join(o.Paths.ClientDir, o.Name)
	} else if o.Out != nil {
		sys = o.Out // the CA was read under --root; the files are the caller's
	}
	f := ClientFilesIn(dir, o.Name)
	if err := clientDirs(&res, sys, f, owned, o.Paths); err != nil {
		return res, err
	}
	unlock, err := sys.Lock(f.Cert)
	if err != nil {
		return res, err
	}
	defer unlock()
	reason, err := clientReissueReason(sys, f, ca, o.Name, o.KeyType, o.RenewBefore)
	if err != nil {
		return res, err
	}
	var issued *pki.Issued
	if reason != "" {
		if issued, err = pki.IssueClient(randOr(o.Rand), sys.Now(), ca, pki.ClientRequest{Name: o.Name, KeyType: keptKeyType(sys, f.Cert, o.KeyType), Days: o.Days}); err != nil {
			return res, err
		}
	}
	return res, writeClient(&res, sys, f, owned, ca, issued, reason, o)
}

// clientReissueReason says why the client certificate must be (re)issued,
// or "" when the one on disk is fine.
func clientReissueReason(sys system.System, f ClientFiles, ca *pki.CA, name string, kt pki.KeyType, renewBefore int) (string, error) {
	cert, reason, err := readLeaf(sys, f.Cert, f.Key)
	if err != nil || reason != "" {
		return reason, err
	}
	now := sys.Now()
	if reason := chainReason(cert, ca, x509.ExtKeyUsageClientAuth, now); reason != "" {
		return reason, nil
	}
	if cert.Subject.CommonName != name {
		return fmt.Sprintf("CN is %q", cert.Subject.CommonName), nil
	}
	return dueReason(cert, ca, kt, renewBefore, now), nil
}

// clientDirs makes the client's folder: root-only under ClientDir; with
// --out, created private when missing and otherwise left as the caller has it.
func clientDirs(res *Result, sys system.System, f ClientFiles, owned bool, p Paths) error {
	if owned {
		if err := createParent(res, sys, p.ClientDir); err != nil {
			return err
		}
		if err := createDir(res, sys, "clients folder", p.ClientDir, caDirAttr); err != nil {
			return err
		}
		return ensureDir(res, sys, "client folder", f.Dir, caDirAttr)
	}
	// A folder we create for the caller starts private: it is about to hold
	// a private key.
	return createDir(res, sys, "client folder", f.Dir, system.Attr{Mode: 0o700})
}

// writeClient writes the client's files; the caller holds the lock.
func writeClient(res *Result, sys system.System, f ClientFiles, owned bool, ca *pki.CA, issued *pki.Issued, reason string, o ClientOptions) error {
	secret, public := system.Attr{Mode: 0o600}, system.Attr{Mode: 0o644}
	if owned {
		secret, public = layout.RootOnly, publicAttr
	}
	what := "client " + o.Name
	files := certFiles{what + " key", f.Key, secret, what + " certificate", f.Cert, public}
	keyPEM, certPEM, err := files.writeIssued(res, sys, issued, reason)
	if err != nil {
		return err
	}
	if err := write(res, sys, what+" CA certificate", f.CA, pki.EncodeCertificate(ca.Cert.Raw), public, ""); err != nil {
		return err
	}
	if !o.P12 {
		if issued != nil && layout.Exists(sys, f.P12) {
			res.Warn("%s still holds the previous certificate; rebuild it with `mosqprov cert client %s --p12`", f.P12, o.Name)
		}
		return nil
	}
	return writeP12(res, sys, what, f, keyPEM, certPEM, ca, secret, o)
}

// writeP12 writes the PKCS#12 bundle unless the one on disk already opens
// with the password and holds this key and certificate (PKCS#12 salts make
// every encoding differ, so comparing bytes would rewrite it every run).
func writeP12(res *Result, sys system.System, what string, f ClientFiles, keyPEM, certPEM []byte, ca *pki.CA, attr system.Attr, o ClientOptions) error {
	key, err := pki.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Key, err)
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Cert, err)
	}
	if old, err := readOptional(sys, f.P12); err == nil && old != nil {
		if k, c, _, err := pkcs12.DecodeChain(old, o.Password); err == nil && c.Equal(cert) {
			if s, ok := k.(crypto.Signer); ok && pki.KeyMatches(cert, s) {
				return write(res, sys, what+" PKCS#12 bundle", f.P12, old, attr, "")
			}
		}
	}
	// LegacyDES (3DES, SHA-1 MAC) because Android and iOS/macOS keychains
	// still refuse the AES-based PKCS#12 that OpenSSL 3 makes by default; the
	// file stays 0600 and the README says to use a long random password.
	pfx, err := pkcs12.LegacyDES.WithRand(randOr(o.Rand)).Encode(key, cert, []*x509.Certificate{ca.Cert}, o.Password)
	if err != nil {
		return fmt.Errorf("encode PKCS#12 for %s: %w", o.Name, err)
	}
	return write(res, sys, what+" PKCS#12 bundle", f.P12, pfx, attr, "open it with the password you gave")
}
