// Package certs keeps the CA, the broker's server certificate and client
// certificates on disk: it reads what is there through pkg/system, decides
// with pkg/pki whether it is still right, and writes only what must change.
// The single-step `mosqprov cert` commands and plan/apply call the same
// functions.
package certs

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Paths are the target paths of everything this package manages.
type Paths struct {
	CADir      string
	CAKey      string
	CACert     string
	BrokerDir  string
	BrokerCA   string
	ServerCert string
	ServerKey  string
	ClientDir  string
	// CACRL is the CA's revocation list, BrokerCRL the broker's copy.
	CACRL     string
	BrokerCRL string
}

// DefaultPaths is the layout from pkg/layout.
func DefaultPaths() Paths {
	return Paths{
		CADir: layout.CADir, CAKey: layout.CAKey, CACert: layout.CACert,
		BrokerDir: layout.BrokerCertDir, BrokerCA: layout.BrokerCACert,
		ServerCert: layout.ServerCert, ServerKey: layout.ServerKey,
		ClientDir: layout.ClientDir,
		CACRL:     layout.CACRL, BrokerCRL: layout.BrokerCRL,
	}
}

// Owners and modes.
var (
	// caDirAttr: only root may even list the CA folder.
	caDirAttr = system.Attr{Mode: 0o700, User: "root", Group: "root"}
	// brokerDirAttr matches what Debian's package creates for /etc/mosquitto/certs.
	brokerDirAttr = system.Attr{Mode: 0o755, User: "root", Group: "root"}
	// publicAttr is for certificates: anyone may read them.
	publicAttr = layout.Public
)

// serverKeyAttr is the owner and mode of the broker's private key. The
// broker opens it after dropping to the mosquitto user, so that user must
// read it. mosquitto:mosquitto 0600 rather than root:mosquitto 0640: it is
// the shape Mosquitto 2.0.16+ asks of the secret files it opens itself
// (password and ACL files: warnings when others can read them or when owner
// or group is not the broker's user, "future versions will refuse to load
// this file"; REFERENCE.md), and layout.BrokerSecret gives every broker
// secret that one rule. (The TLS key itself is read by OpenSSL, which
// checks nothing.) That the broker could rewrite its own key gives nothing
// to an attacker who already runs as it: the key is in its memory anyway.
func serverKeyAttr(sys system.System) (system.Attr, string) {
	return layout.BrokerSecret(sys)
}

// Result is what a converge step did and what the broker needs afterwards:
// the one shape every converge step reports (system.Result).
type Result = system.Result

// reloadIfChanged asks for a reload when any of paths changed. 2.0.11
// re-reads its certificates and keys on SIGHUP (checked with the real
// broker: a swapped server.crt is served to the next handshake after a
// reload, see TestReloadServesNewCertificate), so no restart is needed and
// no client is dropped.
func reloadIfChanged(r *Result, paths ...string) {
	for _, c := range r.Changes {
		for _, p := range paths {
			if c.Changed && c.Path == p {
				r.Needs(system.NeedReload)
			}
		}
	}
}

const (
	whatCADir      = "CA folder"
	whatCAKey      = "CA key"
	whatCACert     = "CA certificate"
	whatBrokerDir  = "broker certificate folder"
	whatBrokerCA   = "broker CA certificate"
	whatServerCert = "server certificate"
	whatServerKey  = "server key"
)

// newKeyType is the key type of a new key: the one asked for, else
// rsa-2048 (what the article uses and old microcontroller stacks handle).
func newKeyType(kt pki.KeyType) pki.KeyType {
	if kt == "" {
		return pki.RSA2048
	}
	return kt
}

// keptKeyType is kt, or when kt is empty the key type of the certificate at
// certPath, so a reissue without --key-type keeps an ecdsa-p256 key
// ecdsa-p256 (as the README says); rsa-2048 when there is none.
func keptKeyType(sys system.System, certPath string, kt pki.KeyType) pki.KeyType {
	if kt != "" {
		return kt
	}
	if data, err := readOptional(sys, certPath); err == nil && data != nil {
		if c, err := pki.ParseCertificate(data); err == nil && slices.Contains(pki.KeyTypes, pki.KeyTypeOf(c.PublicKey)) {
			return pki.KeyTypeOf(c.PublicKey)
		}
	}
	return pki.RSA2048
}

func randOr(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

func write(res *Result, sys system.System, what, path string, data []byte, attr system.Attr, detail string) error {
	act, err := sys.WriteFile(path, data, attr)
	if err != nil {
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	if !act.Changed() {
		detail = ""
	}
	res.Add(system.NewChange(what, path, act, detail))
	return nil
}

// createDir makes path when it is missing and leaves an existing folder as
// it is: the broker's certs folder belongs to Debian's package, and a
// --clients-dir may be a folder the user already has.
func createDir(res *Result, sys system.System, what, path string, attr system.Attr) error {
	if _, err := sys.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return ensureDir(res, sys, what, path, attr)
}

// createParent creates the folder holding dir when it is missing (root,
// 0755: /etc/mosqprov also holds broker.yaml), so a plan shows it; an
// existing one is never touched.
func createParent(res *Result, sys system.System, dir string) error {
	parent := path.Dir(dir)
	what := "folder"
	if parent == layout.StateDir {
		what = "mosqprov folder"
	}
	return createDir(res, sys, what, parent, system.Attr{Mode: 0o755, User: "root", Group: "root"})
}

// ensureDir makes path a folder with attr, fixing an existing one; missing
// parents are created 0755.
func ensureDir(res *Result, sys system.System, what, path string, attr system.Attr) error {
	act, err := sys.EnsureDir(path, attr)
	if err != nil {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	res.Add(system.NewChange(what, path, act, ""))
	return nil
}

// readOptional reads path; a missing file is (nil, nil).
func readOptional(sys system.System, path string) ([]byte, error) {
	data, err := sys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// LoadCA reads the CA from p. A missing, unreadable or inconsistent CA is an
// input error naming the file: nothing can be issued until it is fixed.
func LoadCA(sys system.System, p Paths) (*pki.CA, error) {
	certPEM, err := sys.ReadFile(p.CACert)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.Invalid(p.CACert, "no CA certificate; create the CA with `mosqprov cert ca` first")
	}
	if err != nil {
		return nil, errs.Invalid(p.CACert, "can't read the CA certificate: %v", errs.PathCause(err))
	}
	keyPEM, err := sys.ReadFile(p.CAKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.Invalid(p.CAKey, "the CA key is missing, so nothing can be signed; restore it, or replace the CA with `mosqprov cert ca --force`")
	}
	if err != nil {
		return nil, errs.Invalid(p.CAKey, "can't read the CA key (run as root): %v", errs.PathCause(err))
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, errs.Invalid(p.CAKey, "%v; restore the CA or replace it with `mosqprov cert ca --force`", err)
	}
	return ca, nil
}

// CAOptions is the CA wanted.
type CAOptions struct {
	Paths      Paths
	CommonName string
	KeyType    pki.KeyType
	// Force replaces a CA that exists (valid or not).
	Force bool
	Rand  io.Reader
}

// EnsureCA creates the CA when it is missing and leaves a valid one alone.
// A broken CA (key and certificate don't match, one of them is missing or
// unreadable, expired) is an error unless Force: replacing a CA silently
// would cut off every device that trusts the old one. The one repair made
// without Force is finishing a CA whose creation stopped between its key
// and its certificate (finishCA).
func EnsureCA(sys system.System, o CAOptions) (Result, error) {
	var res Result
	if err := pki.ValidateCommonName("--ca-name", o.CommonName); err != nil {
		return res, err
	}
	wantType := o.KeyType
	o.KeyType = newKeyType(o.KeyType)
	if err := createParent(&res, sys, o.Paths.CADir); err != nil {
		return res, err
	}
	if err := ensureDir(&res, sys, whatCADir, o.Paths.CADir, caDirAttr); err != nil {
		return res, err
	}
	unlock, err := sys.Lock(o.Paths.CAKey)
	if err != nil {
		return res, err
	}
	defer unlock()
	existing, loadErr := LoadCA(sys, o.Paths)
	if loadErr == nil && sys.Now().After(existing.Cert.NotAfter) {
		loadErr = errs.Invalid(o.Paths.CACert, "the CA expired on %s; replace it with `mosqprov cert ca --force`", existing.Cert.NotAfter.Format(time.DateOnly))
	}
	// Exists is true when the file can't even be looked at (no permission):
	// what can't be seen is never taken for missing and replaced.
	certExists := layout.Exists(sys, o.Paths.CACert)
	keyExists := layout.Exists(sys, o.Paths.CAKey)
	switch {
	case o.Force:
	case loadErr == nil:
		if have := pki.KeyTypeOf(existing.Cert.PublicKey); wantType != "" && have != wantType {
			res.Warn("the CA's key is %s, not %s; it is kept (replacing it needs --force, and every device then needs the new ca.crt)", have, wantType)
		}
		_, _, err := caFiles(o.Paths).writeIssued(&res, sys, nil, "")
		return res, err
	case keyExists && !certExists:
		issued, note, err := finishCA(sys, o)
		if err != nil {
			return res, err
		}
		return res, caFiles(o.Paths).write(&res, sys, issued.KeyPEM, issued.CertPEM, describeCA(issued.Cert)+"; "+note)
	case certExists || keyExists:
		return res, loadErr
	}
	issued, err := pki.NewCA(randOr(o.Rand), sys.Now(), pki.CARequest{CommonName: o.CommonName, KeyType: o.KeyType})
	if err != nil {
		return res, err
	}
	if certExists || keyExists {
		res.Warn("the CA was replaced: every device and client that trusts the old CA must get the new ca.crt (`mosqprov cert export`), and the server and client certificates must be reissued (`mosqprov cert server`, `mosqprov cert client NAME`)")
	}
	return res, caFiles(o.Paths).write(&res, sys, issued.KeyPEM, issued.CertPEM, describeCA(issued.Cert))
}

// finishCA completes a CA whose key exists without its certificate. The
// key is written first (certFiles.write), so a creation stopped in between
// (a full disk, a kill) leaves exactly this; no device can trust a CA
// certificate that was never written, so signing one for that key replaces
// nothing. Unless the broker's copy of ca.crt says otherwise: when it
// belongs to this key it *is* the CA devices trust, and is put back as it
// is; when it belongs to another key, the CA devices trust has lost its key,
// and making a new one is a replacement that needs --force.
func finishCA(sys system.System, o CAOptions) (*pki.Issued, string, error) {
	keyPEM, err := sys.ReadFile(o.Paths.CAKey)
	if err != nil {
		return nil, "", errs.Invalid(o.Paths.CAKey, "can't read the CA key (run as root): %v", errs.PathCause(err))
	}
	key, err := pki.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, "", errs.Invalid(o.Paths.CAKey, "%v, and there is no %s; remove the key or replace the CA with `mosqprov cert ca --force`", err, o.Paths.CACert)
	}
	if copyPEM, err := readOptional(sys, o.Paths.BrokerCA); err == nil && copyPEM != nil {
		if c, err := pki.ParseCertificate(copyPEM); err == nil && c.IsCA {
			if !pki.KeyMatches(c, key) {
				return nil, "", errs.Invalid(o.Paths.CACert, "missing, and %s (the CA the broker and its clients trust) does not belong to %s; put the CA's ca.crt back, or replace the CA with `mosqprov cert ca --force`", o.Paths.BrokerCA, o.Paths.CAKey)
			}
			if sys.Now().After(c.NotAfter) {
				return nil, "", errs.Invalid(o.Paths.CACert, "missing, and the CA in %s expired on %s; replace it with `mosqprov cert ca --force`", o.Paths.BrokerCA, c.NotAfter.Format(time.DateOnly))
			}
			return &pki.Issued{CertPEM: pki.EncodeCertificate(c.Raw), KeyPEM: keyPEM, Cert: c, Key: key}, "restored from " + o.Paths.BrokerCA, nil
		}
	}
	issued, err := pki.NewCA(randOr(o.Rand), sys.Now(), pki.CARequest{CommonName: o.CommonName, Key: key})
	if err != nil {
		return nil, "", err
	}
	// The same key bytes: the key file is left as it is.
	issued.KeyPEM = keyPEM
	return issued, "finished with the existing " + o.Paths.CAKey, nil
}

func describeCA(c *x509.Certificate) string {
	return fmt.Sprintf("CN=%s, %s, until %s", c.Subject.CommonName, pki.KeyTypeOf(c.PublicKey), c.NotAfter.Format(time.DateOnly))
}

// certFiles are a private key and its certificate on disk, with the owner
// and mode each must have.
type certFiles struct {
	whatKey, key   string
	keyAttr        system.Attr
	whatCert, cert string
	certAttr       system.Attr
}

func caFiles(p Paths) certFiles {
	return certFiles{whatCAKey, p.CAKey, layout.RootOnly, whatCACert, p.CACert, publicAttr}
}

// read returns the key and certificate on disk.
func (f certFiles) read(sys system.System) (keyPEM, certPEM []byte, err error) {
	if keyPEM, err = sys.ReadFile(f.key); err != nil {
		return nil, nil, fmt.Errorf("read %s %s: %w", f.whatKey, f.key, err)
	}
	if certPEM, err = sys.ReadFile(f.cert); err != nil {
		return nil, nil, fmt.Errorf("read %s %s: %w", f.whatCert, f.cert, err)
	}
	return keyPEM, certPEM, nil
}

// write writes the key, then the certificate: a run stopped in between
// leaves a key without (or not matching) its certificate, which the next
// run sees and repairs, never a certificate whose key isn't there yet.
func (f certFiles) write(res *Result, sys system.System, keyPEM, certPEM []byte, detail string) error {
	if err := write(res, sys, f.whatKey, f.key, keyPEM, f.keyAttr, ""); err != nil {
		return err
	}
	return write(res, sys, f.whatCert, f.cert, certPEM, f.certAttr, detail)
}

// writeIssued writes a newly issued key and certificate, or, when issued is
// nil, re-writes the ones on disk as they are (only a wrong owner or mode
// changes anything), and returns the PEM now on disk.
func (f certFiles) writeIssued(res *Result, sys system.System, issued *pki.Issued, reason string) (keyPEM, certPEM []byte, err error) {
	if issued == nil {
		if keyPEM, certPEM, err = f.read(sys); err != nil {
			return nil, nil, err
		}
		return keyPEM, certPEM, f.write(res, sys, keyPEM, certPEM, "")
	}
	detail := describeLeaf(issued.Cert) + "; " + reason
	return issued.KeyPEM, issued.CertPEM, f.write(res, sys, issued.KeyPEM, issued.CertPEM, detail)
}

// readLeaf reads a certificate and its key. A reason is returned instead of
// the certificate when there is nothing to keep: none yet, unreadable, or a
// key that isn't the certificate's.
func readLeaf(sys system.System, certPath, keyPath string) (*x509.Certificate, string, error) {
	certPEM, err := readOptional(sys, certPath)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", certPath, err)
	}
	if certPEM == nil {
		return nil, "new", nil
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, "the certificate on disk can't be read: " + err.Error(), nil
	}
	keyPEM, err := readOptional(sys, keyPath)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", keyPath, err)
	}
	if keyPEM == nil {
		return nil, "the key is missing", nil
	}
	key, err := pki.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, "the key on disk can't be read: " + err.Error(), nil
	}
	if !pki.KeyMatches(cert, key) {
		return nil, "the key does not match the certificate", nil
	}
	return cert, "", nil
}

// chainReason says why cert can't serve for usage under ca, or "".
func chainReason(cert *x509.Certificate, ca *pki.CA, usage x509.ExtKeyUsage, now time.Time) string {
	err := chainsTo(cert, ca, usage, now)
	switch {
	case err == nil:
		return ""
	case now.After(cert.NotAfter):
		return "expired on " + cert.NotAfter.Format(time.DateOnly)
	case usage == x509.ExtKeyUsageClientAuth:
		return "not issued by this CA for TLS clients (" + oneLine(err) + ")"
	}
	return "not issued by this CA for TLS servers (" + oneLine(err) + ")"
}

// dueReason is what every kept leaf must also pass: the key type asked for
// (kt == "" accepts any) and more than renewBefore days left. A leaf that
// already ends with its CA is not due: a new one would end on the same day
// (pki caps leaves at the CA's expiry), so reissuing it would only repeat
// on every run; the CA itself must be replaced, which status and renew say.
func dueReason(cert *x509.Certificate, ca *pki.CA, kt pki.KeyType, renewBefore int, now time.Time) string {
	if have := pki.KeyTypeOf(cert.PublicKey); kt != "" && have != kt {
		return fmt.Sprintf("key type %s, want %s", have, kt)
	}
	if left := pki.DaysLeft(cert, now); left < renewBefore && cert.NotAfter.Before(ca.Cert.NotAfter) {
		return fmt.Sprintf("expires in %d days (renew %d days before)", left, renewBefore)
	}
	return ""
}

// chainsTo checks cert against the CA for usage at now.
func chainsTo(cert *x509.Certificate, ca *pki.CA, usage x509.ExtKeyUsage, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return pki.Verify(cert, roots, nil, usage, now)
}
