package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Entry is the state of one certificate and its key.
type Entry struct {
	// Kind is ca, server or client; Name is the client's name.
	Kind       string    `json:"kind"`
	Name       string    `json:"name,omitempty"`
	Path       string    `json:"path"`
	KeyPath    string    `json:"key_path"`
	Present    bool      `json:"present"`
	Subject    string    `json:"subject,omitempty"`
	Issuer     string    `json:"issuer,omitempty"`
	SANs       []string  `json:"sans,omitempty"`
	KeyType    string    `json:"key_type,omitempty"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	DaysLeft   int       `json:"days_left"`
	ChainOK    bool      `json:"chain_ok"`
	KeyMatches bool      `json:"key_matches"`
	FilesOK    bool      `json:"owner_mode_ok"`
	// Revoked: a client certificate on the CA's revocation list (not a
	// problem: someone revoked it on purpose).
	Revoked bool `json:"revoked,omitempty"`
	// CRL is set on the entry of kind crl.
	CRL *CRLStatus `json:"crl,omitempty"`
	// Problems is empty when all is well; each is one short sentence.
	Problems []string `json:"problems,omitempty"`
}

// Label is how the entry is named in text output.
func (e Entry) Label() string {
	if e.Kind == "client" {
		return "client " + e.Name
	}
	return e.Kind
}

func (e *Entry) problem(format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
}

// Status reports the CA, the server certificate and every client
// certificate under Paths.ClientDir. Something expiring within warnDays is
// a problem, as are a broken chain, a key that doesn't match and a wrong
// owner or mode. A certificate that doesn't exist is not present, not a
// problem: nothing has been set up yet.
func Status(sys system.System, p Paths, warnDays int) ([]Entry, error) {
	now := sys.Now()
	var entries []Entry

	ca := Entry{Kind: "ca", Path: p.CACert, KeyPath: p.CAKey}
	caCert := inspect(sys, &ca, now, warnDays)
	if ca.Present {
		ca.ChainOK = caCert.IsCA && caCert.CheckSignatureFrom(caCert) == nil
		if !ca.ChainOK {
			ca.problem("%s is not a self-signed CA certificate", p.CACert)
		}
		ca.FilesOK = checkFiles(sys, &ca, fileWant{p.CADir, caDirAttr, true}, fileWant{p.CAKey, layout.RootOnly, false}, fileWant{p.CACert, publicAttr, false})
	}
	entries = append(entries, ca)

	srv := Entry{Kind: "server", Path: p.ServerCert, KeyPath: p.ServerKey}
	if cert := inspect(sys, &srv, now, warnDays); srv.Present {
		chain, _ := readChain(sys, p.ServerCert)
		roots, _ := x509.SystemCertPool()
		if roots == nil {
			roots = x509.NewCertPool()
		}
		if caCert != nil {
			roots.AddCert(caCert)
		}
		if err := pki.Verify(cert, roots, chain, x509.ExtKeyUsageServerAuth, now); err != nil {
			srv.problem("chain: %s", oneLine(err))
		} else {
			srv.ChainOK = true
		}
		if caCert != nil {
			// The broker's ca.crt (its cafile) must be the local CA.
			if b, err := sys.ReadFile(p.BrokerCA); err != nil || !bytes.Equal(b, pki.EncodeCertificate(caCert.Raw)) {
				srv.problem("%s is not the CA's certificate", p.BrokerCA)
			}
		}
		keyAttr, _ := serverKeyAttr(sys)
		srv.FilesOK = checkFiles(sys, &srv, fileWant{p.ServerKey, keyAttr, false}, fileWant{p.ServerCert, publicAttr, false}, fileWant{p.BrokerCA, publicAttr, false})
	}
	entries = append(entries, srv)

	names, err := clientNames(sys, p.ClientDir)
	if err != nil {
		return entries, err
	}
	var revoked map[string]bool
	if caCert != nil {
		revoked = revokedSet(sys, p, caCert)
	}
	bySerial := map[string]string{}
	var clients []Entry
	for _, name := range names {
		f := ClientFilesIn(path.Join(p.ClientDir, name), name)
		e := Entry{Kind: "client", Name: name, Path: f.Cert, KeyPath: f.Key}
		cert := inspect(sys, &e, now, warnDays)
		if !e.Present {
			continue
		}
		if cert != nil {
			serial := cert.SerialNumber.Text(16)
			bySerial[serial] = name
			if e.Revoked = revoked[serial]; e.Revoked {
				// Revoked on purpose: its expiry no longer matters.
				e.Problems = slices.DeleteFunc(e.Problems, func(p string) bool { return strings.HasPrefix(p, "expire") })
			}
		}
		if caCert == nil {
			e.problem("no CA to check the chain against")
		} else if err := chainsTo(cert, &pki.CA{Cert: caCert}, x509.ExtKeyUsageClientAuth, now); err != nil {
			e.problem("chain: %s", oneLine(err))
		} else {
			e.ChainOK = true
		}
		e.FilesOK = checkFiles(sys, &e, fileWant{f.Dir, caDirAttr, true}, fileWant{f.Key, layout.RootOnly, false}, fileWant{f.Cert, publicAttr, false})
		clients = append(clients, e)
	}
	if crl, ok := crlEntry(sys, p, caCert, bySerial, now, warnDays); ok {
		entries = append(entries, crl)
	}
	return append(entries, clients...), nil
}

// inspect fills the certificate fields of e and checks its key. It returns
// the certificate, or nil when there is none to look at.
func inspect(sys system.System, e *Entry, now time.Time, warnDays int) *x509.Certificate {
	data, err := sys.ReadFile(e.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	e.Present = true
	if err != nil {
		e.problem("can't read %s: %v", e.Path, errs.PathCause(err))
		return nil
	}
	cert, err := pki.ParseCertificate(data)
	if err != nil {
		e.problem("%s: %v", e.Path, err)
		return nil
	}
	e.Subject = cert.Subject.String()
	e.Issuer = cert.Issuer.String()
	e.SANs = pki.SANs(cert)
	e.KeyType = string(pki.KeyTypeOf(cert.PublicKey))
	e.NotAfter = cert.NotAfter.UTC()
	e.DaysLeft = pki.DaysLeft(cert, now)
	switch {
	case now.After(cert.NotAfter):
		e.problem("expired on %s", cert.NotAfter.Format(time.DateOnly))
	case e.DaysLeft < warnDays:
		e.problem("expires in %d days (on %s)", e.DaysLeft, cert.NotAfter.Format(time.DateOnly))
	}
	keyPEM, err := sys.ReadFile(e.KeyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		e.problem("key %s is missing", e.KeyPath)
	case err != nil:
		e.problem("can't read key %s: %v", e.KeyPath, errs.PathCause(err))
	default:
		key, err := pki.ParsePrivateKey(keyPEM)
		if err != nil {
			e.problem("key %s: %v", e.KeyPath, err)
		} else if e.KeyMatches = pki.KeyMatches(cert, key); !e.KeyMatches {
			e.problem("key %s does not match the certificate", e.KeyPath)
		}
	}
	return cert
}

func readChain(sys system.System, p string) ([]*x509.Certificate, error) {
	data, err := sys.ReadFile(p)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil || len(certs) < 2 {
		return nil, err
	}
	return certs[1:], nil
}

type fileWant struct {
	path string
	attr system.Attr
	dir  bool
}

// checkFiles compares owners and modes with what mosqprov writes.
func checkFiles(sys system.System, e *Entry, wants ...fileWant) bool {
	ok := true
	for _, w := range wants {
		fi, err := sys.Stat(w.path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				e.problem("can't stat %s: %v", w.path, errs.PathCause(err))
				ok = false
			}
			continue
		}
		var bad []string
		if fi.Symlink {
			bad = append(bad, "is a symlink")
		}
		if fi.Mode != w.attr.Mode.Perm() {
			bad = append(bad, fmt.Sprintf("mode %04o, want %04o", fi.Mode, w.attr.Mode.Perm()))
		}
		if w.attr.User != "" {
			if acct, err := sys.LookupUser(w.attr.User); err == nil && acct.UID != fi.UID {
				bad = append(bad, fmt.Sprintf("owner uid %d, want %s", fi.UID, w.attr.User))
			}
		}
		if w.attr.Group != "" {
			if gid, err := sys.LookupGroup(w.attr.Group); err == nil && gid != fi.GID {
				bad = append(bad, fmt.Sprintf("group gid %d, want %s", fi.GID, w.attr.Group))
			}
		}
		if len(bad) > 0 {
			e.problem("%s: %s", w.path, strings.Join(bad, ", "))
			ok = false
		}
	}
	return ok
}

func clientNames(sys system.System, dir string) ([]string, error) {
	entries, err := sys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var names []string
	for _, d := range entries {
		if d.IsDir() && pki.ValidateClientName("", d.Name()) == nil {
			names = append(names, d.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Failing reports whether any entry has a problem.
func Failing(entries []Entry) bool {
	for _, e := range entries {
		if len(e.Problems) > 0 {
			return true
		}
	}
	return false
}
