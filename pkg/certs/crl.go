package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

const (
	whatCACRL     = "CA revocation list"
	whatBrokerCRL = "broker revocation list"
)

// crlAttr: a CRL holds serial numbers and dates, nothing secret; root's,
// readable by the broker after it drops to its user, like ca.crt.
var crlAttr = layout.Public

// CRLOptions is what `cert revoke`, `cert renew` and apply ask of the CRL.
type CRLOptions struct {
	Paths Paths
	// Revoke are client names (folders under Paths.ClientDir) whose current
	// certificate must be on the list. Entries already there stay: nothing
	// is ever taken off a CRL.
	Revoke []string
	// Field names the input in errors ("NAME", "revoked").
	Field string
	// Targets are certificates named another way than by a client folder:
	// a certificate file or a serial number (`cert revoke --cert FILE`,
	// `--serial HEX`, broker.yaml's `revoked: [serial:HEX]`).
	Targets []Target
	Rand    io.Reader
}

// Target is a certificate to revoke that is not (or no longer) in the
// clients folder: one mosqprov's CA issued with `cert client --out` (a
// bridge's client certificate, a device's exported bundle), given as its
// certificate or only as its serial number.
type Target struct {
	// Field names the input in errors ("--cert", "revoked[2]").
	Field string
	// Cert, when set, is the certificate: it must be signed by this CA.
	Cert *x509.Certificate
	// Serial is the serial number (Cert's, when Cert is set).
	Serial *big.Int
}

// Label is how the target is shown: "serial 4a3f…" or "CN (serial 4a3f…)".
func (t Target) Label() string {
	if t.Cert != nil && t.Cert.Subject.CommonName != "" {
		return fmt.Sprintf("%s (serial %s)", t.Cert.Subject.CommonName, t.Serial.Text(16))
	}
	return "serial " + t.Serial.Text(16)
}

// checkTarget refuses what must never go on the list: the CA itself, the
// broker's server certificate, a certificate this CA did not sign, and one
// that is not a client certificate.
func checkTarget(sys system.System, p Paths, ca *x509.Certificate, field string, cert *x509.Certificate, serial *big.Int) error {
	if serial.Cmp(ca.SerialNumber) == 0 || cert != nil && cert.IsCA {
		return errs.Invalid(field, "serial %s is the CA's own certificate: revoking it would lock out every client; replace the CA with `mosqprov cert ca --force` instead", serial.Text(16))
	}
	if data, err := sys.ReadFile(p.ServerCert); err == nil {
		if server, err := pki.ParseCertificate(data); err == nil && server.SerialNumber.Cmp(serial) == 0 {
			return errs.Invalid(field, "serial %s is the broker's server certificate: the revocation list is for client certificates; reissue the server's with `mosqprov cert server` instead", serial.Text(16))
		}
	}
	if cert == nil {
		return nil
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return errs.Invalid(field, "%q (serial %s) was not issued by this broker's CA (%s): only certificates it signed can go on its revocation list", cert.Subject.CommonName, serial.Text(16), ca.Subject.CommonName)
	}
	client := len(cert.ExtKeyUsage) == 0
	for _, u := range cert.ExtKeyUsage {
		client = client || u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	}
	if !client {
		return errs.Invalid(field, "%q (serial %s) is not a client certificate (no clientAuth): the broker checks the revocation list only for client certificates", cert.Subject.CommonName, serial.Text(16))
	}
	return nil
}

// CRLResult is what EnsureCRL did.
type CRLResult struct {
	Result
	// Revoked are the names newly put on the list by this run.
	Revoked []string
	// Exists is true when a CRL is (or, in dry-run, would be) on disk
	// afterwards: only then do the mutual-TLS listeners get a crlfile.
	Exists bool
}

// EnsureCRL keeps the CA's revocation list: it adds the current
// certificates of o.Revoke, re-signs the list when its next update is less
// than pki.CRLRenewDays away, and keeps the broker's copy identical to the
// CA's. With nothing to revoke and no CRL yet it does nothing: a broker that
// never revoked anything gets no crlfile, so no CRL can expire under it.
//
// The broker re-reads its crlfile on SIGHUP (2.0.11, checked by
// TestReloadReadsNewCRL), so a changed copy needs a reload.
func EnsureCRL(sys system.System, o CRLOptions) (CRLResult, error) {
	var res CRLResult
	if o.Field == "" {
		o.Field = "NAME"
	}
	for _, name := range o.Revoke {
		if err := pki.ValidateClientName(o.Field, name); err != nil {
			return res, err
		}
	}
	if len(o.Revoke) == 0 && len(o.Targets) == 0 && !layout.Exists(sys, o.Paths.CACRL) && !layout.Exists(sys, o.Paths.BrokerCRL) {
		return res, nil
	}
	ca, err := LoadCA(sys, o.Paths)
	if err != nil {
		return res, err
	}
	unlock, err := sys.Lock(o.Paths.CACRL)
	if err != nil {
		return res, err
	}
	defer unlock()
	current, err := readCRL(sys, o.Paths, ca.Cert)
	if err != nil {
		return res, err
	}
	now := sys.Now()
	var entries []pki.Revoked
	number := big.NewInt(0)
	var reasons []string
	if current == nil {
		reasons = append(reasons, "new")
	} else {
		entries = pki.RevokedSerials(current)
		if current.Number != nil {
			number.Set(current.Number)
		}
		if left := pki.CRLDaysLeft(current, now); left < pki.CRLRenewDays {
			reasons = append(reasons, fmt.Sprintf("next update in %d days (re-signed %d days before)", left, pki.CRLRenewDays))
		}
	}
	for _, name := range o.Revoke {
		cert, err := clientCert(sys, o.Paths, name, o.Field)
		if err != nil {
			return res, err
		}
		if err := checkTarget(sys, o.Paths, ca.Cert, o.Field, cert, cert.SerialNumber); err != nil {
			return res, err
		}
		if current != nil && pki.IsRevoked(current, cert.SerialNumber) || hasSerial(entries, cert.SerialNumber) {
			continue
		}
		entries = append(entries, pki.Revoked{Serial: cert.SerialNumber, At: now})
		res.Revoked = append(res.Revoked, name)
	}
	for _, t := range o.Targets {
		if t.Cert != nil {
			t.Serial = t.Cert.SerialNumber
		}
		if err := checkTarget(sys, o.Paths, ca.Cert, t.Field, t.Cert, t.Serial); err != nil {
			return res, err
		}
		if current != nil && pki.IsRevoked(current, t.Serial) || hasSerial(entries, t.Serial) {
			continue
		}
		entries = append(entries, pki.Revoked{Serial: t.Serial, At: now})
		res.Revoked = append(res.Revoked, t.Label())
	}
	if len(res.Revoked) > 0 {
		reasons = append(reasons, "revoked "+strings.Join(res.Revoked, ", "))
	}
	res.Exists = true
	if len(reasons) == 0 {
		// Still right: the CA's copy as it is, the broker's made equal to it.
		data, err := sys.ReadFile(o.Paths.CACRL)
		if err != nil {
			return res, fmt.Errorf("read %s %s: %w", whatCACRL, o.Paths.CACRL, err)
		}
		return res, writeCRL(&res, sys, o.Paths, data, "")
	}
	number.Add(number, big.NewInt(1))
	data, crl, err := pki.SignCRL(randOr(o.Rand), now, ca, number, entries)
	if err != nil {
		return res, err
	}
	detail := fmt.Sprintf("%d revoked, next update %s; %s", len(entries), crl.NextUpdate.Format(time.DateOnly), strings.Join(reasons, "; "))
	return res, writeCRL(&res, sys, o.Paths, data, detail)
}

// writeCRL writes the CA's copy, then the broker's: a run stopped between
// the two leaves the broker's copy behind, which the next run sees and
// copies. A changed broker copy needs a reload.
func writeCRL(res *CRLResult, sys system.System, p Paths, data []byte, detail string) error {
	if err := write(&res.Result, sys, whatCACRL, p.CACRL, data, crlAttr, detail); err != nil {
		return err
	}
	if err := createDir(&res.Result, sys, whatBrokerDir, p.BrokerDir, brokerDirAttr); err != nil {
		return err
	}
	if err := write(&res.Result, sys, whatBrokerCRL, p.BrokerCRL, data, crlAttr, ""); err != nil {
		return err
	}
	for _, c := range res.Changes {
		if c.Changed && c.Path == p.BrokerCRL {
			res.Needs(CRLNeed)
		}
	}
	return nil
}

// CRLNeed is what a running broker needs to apply a changed crlfile:
// 2.0.11 reloads its listeners' TLS contexts, CRL included, on SIGHUP
// (TestReloadReadsNewCRL).
var CRLNeed = system.NeedReload

// readCRL reads the CA's CRL, falling back to the broker's copy when the
// CA's is missing (a CA folder restored without it). nil when neither
// exists. A CRL that exists but can't be trusted (not ours, not signed by
// this CA, a symlink) is an error: writing a fresh, empty one over it would
// silently un-revoke every device on it.
func readCRL(sys system.System, p Paths, ca *x509.Certificate) (*x509.RevocationList, error) {
	for _, f := range []string{p.CACRL, p.BrokerCRL} {
		crl, err := readCRLFile(sys, f, ca)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, errs.Invalid(f, "%v; restore it from a backup (it lists the revoked certificates), or remove it and revoke them again", err)
		}
		return crl, nil
	}
	return nil, nil
}

// readCRLFile reads and checks one CRL file without following a symlink.
func readCRLFile(sys system.System, f string, ca *x509.Certificate) (*x509.RevocationList, error) {
	fi, err := sys.Stat(f)
	if err != nil {
		return nil, err
	}
	if fi.Symlink {
		return nil, errors.New("is a symlink; mosqprov never follows one for a file it manages")
	}
	if fi.IsDir {
		return nil, errors.New("is a folder")
	}
	if fi.Size > pki.MaxCRLSize {
		return nil, fmt.Errorf("larger than %d bytes", pki.MaxCRLSize)
	}
	data, err := sys.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("can't read it: %v", errs.PathCause(err))
	}
	return pki.ParseCRL(data, ca)
}

// clientCert is the certificate of client name in the clients folder.
func clientCert(sys system.System, p Paths, name, field string) (*x509.Certificate, error) {
	f := ClientFilesIn(path.Join(p.ClientDir, name), name)
	data, err := readOptional(sys, f.Cert)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Cert, err)
	}
	if data == nil {
		return nil, errs.Invalid(field, "no certificate for client %q (%s does not exist); only certificates under %s can be revoked by name", name, f.Cert, p.ClientDir)
	}
	cert, err := pki.ParseCertificate(data)
	if err != nil {
		return nil, errs.Invalid(field, "%s: %v", f.Cert, err)
	}
	return cert, nil
}

func hasSerial(entries []pki.Revoked, serial *big.Int) bool {
	for _, e := range entries {
		if e.Serial.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// CRLStatus is the revocation list as `cert status` and doctor show it.
type CRLStatus struct {
	Path       string    `json:"path"`
	NextUpdate time.Time `json:"next_update"`
	DaysLeft   int       `json:"days_left"`
	// Revoked are the revoked serials (hex), with the client name when a
	// certificate under the clients folder has that serial.
	Revoked []RevokedCert `json:"revoked"`
}

// RevokedCert is one entry of the CRL.
type RevokedCert struct {
	Serial string    `json:"serial"`
	Name   string    `json:"name,omitempty"`
	At     time.Time `json:"revoked_at"`
}

// revokedSet reads the CA's CRL for status: serials by hex, nil without a
// readable CRL.
func revokedSet(sys system.System, p Paths, ca *x509.Certificate) map[string]bool {
	crl, err := readCRL(sys, p, ca)
	if err != nil || crl == nil {
		return nil
	}
	set := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		set[e.SerialNumber.Text(16)] = true
	}
	return set
}

// crlEntry checks the CRL for Status: present when either copy exists.
func crlEntry(sys system.System, p Paths, caCert *x509.Certificate, names map[string]string, now time.Time, warnDays int) (Entry, bool) {
	e := Entry{Kind: "crl", Path: p.BrokerCRL, KeyPath: p.CACRL}
	if !layout.Exists(sys, p.CACRL) && !layout.Exists(sys, p.BrokerCRL) {
		return e, false
	}
	e.Present = true
	if caCert == nil {
		e.problem("no CA to check the revocation list against")
		return e, true
	}
	crl, err := readCRLFile(sys, p.CACRL, caCert)
	if err != nil {
		e.problem("%s: %v", p.CACRL, oneLine(err))
		return e, true
	}
	e.ChainOK = true
	e.Subject = "revocation list of " + caCert.Subject.CommonName
	e.NotAfter = crl.NextUpdate.UTC()
	e.DaysLeft = pki.CRLDaysLeft(crl, now)
	e.CRL = &CRLStatus{Path: p.BrokerCRL, NextUpdate: e.NotAfter, DaysLeft: e.DaysLeft, Revoked: []RevokedCert{}}
	for _, r := range pki.RevokedSerials(crl) {
		hex := r.Serial.Text(16)
		e.CRL.Revoked = append(e.CRL.Revoked, RevokedCert{Serial: hex, Name: names[hex], At: r.At.UTC()})
	}
	sort.Slice(e.CRL.Revoked, func(i, j int) bool { return e.CRL.Revoked[i].At.Before(e.CRL.Revoked[j].At) })
	switch {
	case now.After(crl.NextUpdate):
		e.problem("its next update was due on %s: the broker now refuses every client certificate (mosquitto issue 1826); run `mosqprov cert renew`", crl.NextUpdate.Format(time.DateOnly))
	case e.DaysLeft < warnDays:
		e.problem("its next update is due in %d days (on %s); after that the broker refuses every client certificate: run `mosqprov cert renew`", e.DaysLeft, crl.NextUpdate.Format(time.DateOnly))
	}
	if b, err := readCRLFile(sys, p.BrokerCRL, caCert); err != nil {
		e.problem("%s: %v", p.BrokerCRL, oneLine(err))
	} else if b.Number.Cmp(crl.Number) != 0 || !b.NextUpdate.Equal(crl.NextUpdate) {
		e.problem("%s differs from %s; `mosqprov cert renew` copies it", p.BrokerCRL, p.CACRL)
	}
	e.KeyMatches = true
	e.FilesOK = checkFiles(sys, &e, fileWant{p.CACRL, crlAttr, false}, fileWant{p.BrokerCRL, crlAttr, false})
	return e, true
}

// BrokerCRLFile is the crlfile the mutual-TLS listeners name: the broker's
// copy once something was revoked (it exists), else "" (no crlfile line).
func BrokerCRLFile(sys system.System, p Paths) string {
	if layout.Exists(sys, p.BrokerCRL) {
		return p.BrokerCRL
	}
	return ""
}

// CheckCRL is the revocation list's entry of Status (doctor's view): false
// when there is no CRL.
func CheckCRL(sys system.System, p Paths, warnDays int) (Entry, bool) {
	var caCert *x509.Certificate
	if data, err := sys.ReadFile(p.CACert); err == nil {
		caCert, _ = pki.ParseCertificate(data)
	}
	return crlEntry(sys, p, caCert, nil, sys.Now(), warnDays)
}
