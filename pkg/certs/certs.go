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
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
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
}

// DefaultPaths is the layout from pkg/layout.
func DefaultPaths() Paths {
	return Paths{
		CADir: layout.CADir, CAKey: layout.CAKey, CACert: layout.CACert,
		BrokerDir: layout.BrokerCertDir, BrokerCA: layout.BrokerCACert,
		ServerCert: layout.ServerCert, ServerKey: layout.ServerKey,
		ClientDir: layout.ClientDir,
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

// Result is what a converge step did and what the broker needs afterwards.
type Result struct {
	Changes  []system.Change
	Need     systemd.Need
	Warnings []string
}

func (r *Result) add(c system.Change) { r.Changes = append(r.Changes, c) }

// reloadIfChanged asks for a reload when any of paths changed. 2.0.11
// re-reads its certificates and keys on SIGHUP (checked with the real
// broker: a swapped server.crt is served to the next handshake after a
// reload, see TestReloadServesNewCertificate), so no restart is needed and
// no client is dropped.
func (r *Result) reloadIfChanged(paths ...string) {
	for _, c := range r.Changes {
		for _, p := range paths {
			if c.Changed && c.Path == p {
				r.Need = r.Need.Max(systemd.Reload)
			}
		}
	}
}

func (r *Result) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
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
	res.add(system.NewChange(what, path, act, detail))
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
	res.add(system.NewChange(what, path, act, ""))
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
		return nil, errs.Invalid(p.CACert, "can't read the CA certificate: %v", unwrapPath(err))
	}
	keyPEM, err := sys.ReadFile(p.CAKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.Invalid(p.CAKey, "the CA key is missing, so nothing can be signed; restore it, or replace the CA with `mosqprov cert ca --force`")
	}
	if err != nil {
		return nil, errs.Invalid(p.CAKey, "can't read the CA key (run as root): %v", unwrapPath(err))
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, errs.Invalid(p.CAKey, "%v; restore the CA or replace it with `mosqprov cert ca --force`", err)
	}
	return ca, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
// would cut off every device that trusts the old one.
func EnsureCA(sys system.System, o CAOptions) (Result, error) {
	var res Result
	if o.KeyType == "" {
		o.KeyType = pki.RSA2048
	}
	if err := pki.ValidateCommonName("--ca-name", o.CommonName); err != nil {
		return res, err
	}
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
	certExists := layout.Exists(sys, o.Paths.CACert)
	keyExists := layout.Exists(sys, o.Paths.CAKey)
	if loadErr == nil && sys.Now().After(existing.Cert.NotAfter) {
		loadErr = errs.Invalid(o.Paths.CACert, "the CA expired on %s; replace it with `mosqprov cert ca --force`", existing.Cert.NotAfter.Format(time.DateOnly))
	}
	switch {
	case loadErr == nil && !o.Force:
		if err := ensureCAFiles(&res, sys, o.Paths, nil); err != nil {
			return res, err
		}
		return res, nil
	case keyExists && !certExists && !o.Force:
		// The key is written before the certificate: a CA whose creation
		// was interrupted in between (a full disk, a kill) has a key and no
		// certificate yet. Finish it with that key, so the next run
		// converges; no one can trust a certificate that never existed.
		keyPEM, err := sys.ReadFile(o.Paths.CAKey)
		if err != nil {
			return res, loadErr
		}
		key, err := pki.ParsePrivateKey(keyPEM)
		if err != nil {
			return res, loadErr
		}
		issued, err := pki.NewCA(randOr(o.Rand), sys.Now(), pki.CARequest{CommonName: o.CommonName, Key: key})
		if err != nil {
			return res, err
		}
		return res, ensureCAFiles(&res, sys, o.Paths, issued)
	case loadErr != nil && (certExists || keyExists) && !o.Force:
		return res, loadErr
	}
	issued, err := pki.NewCA(randOr(o.Rand), sys.Now(), pki.CARequest{CommonName: o.CommonName, KeyType: o.KeyType})
	if err != nil {
		return res, err
	}
	if certExists || keyExists {
		res.warn("the CA was replaced: every device and client that trusts the old CA must get the new ca.crt (`mosqprov cert export`), and the server and client certificates must be reissued (`mosqprov cert server`, `mosqprov cert client NAME`)")
	}
	return res, ensureCAFiles(&res, sys, o.Paths, issued)
}

// ensureCAFiles writes a new CA (issued != nil) or fixes the owner and mode
// of the existing one; the caller holds the lock. The key is written before the certificate, so the
// certificate on disk never names a key that isn't there yet.
func ensureCAFiles(res *Result, sys system.System, p Paths, issued *pki.Issued) error {
	var err error
	var keyPEM, certPEM []byte
	detail := ""
	if issued != nil {
		keyPEM, certPEM = issued.KeyPEM, issued.CertPEM
		detail = fmt.Sprintf("CN=%s, %s, until %s", issued.Cert.Subject.CommonName, pki.KeyTypeOf(issued.Cert.PublicKey), issued.Cert.NotAfter.Format(time.DateOnly))
	} else {
		if keyPEM, err = sys.ReadFile(p.CAKey); err != nil {
			return err
		}
		if certPEM, err = sys.ReadFile(p.CACert); err != nil {
			return err
		}
	}
	if err := write(res, sys, whatCAKey, p.CAKey, keyPEM, layout.RootOnly, ""); err != nil {
		return err
	}
	return write(res, sys, whatCACert, p.CACert, certPEM, layout.Public, detail)
}

// chainsTo checks cert against the CA for usage at now.
func chainsTo(cert *x509.Certificate, ca *pki.CA, usage x509.ExtKeyUsage, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return pki.Verify(cert, roots, nil, usage, now)
}
