package certs

import (
	"crypto/x509"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// DefaultRenewBefore is how long before expiry a certificate is reissued:
// a monthly cron job then always catches it.
const DefaultRenewBefore = 30

// ServerOptions is the server certificate wanted.
type ServerOptions struct {
	Paths Paths
	// Names are DNS names or IPs; IPs must be IPs. Both empty: DefaultNames.
	Names []string
	IPs   []string
	// KeyType empty keeps an existing certificate's key type (rsa-2048 for
	// a new one); set, it is required of the existing certificate.
	KeyType pki.KeyType
	// Days is the validity of a new certificate (default pki.ServerDays).
	Days int
	// RenewBefore: a certificate with fewer days left is reissued.
	RenewBefore int
	Rand        io.Reader
}

func (o *ServerOptions) defaults() {
	if o.Days == 0 {
		o.Days = pki.ServerDays
	}
}

// checkRenewWindow rejects a renew window that would reissue on every run.
func checkRenewWindow(renewBefore, days int) error {
	if renewBefore < 0 {
		return errs.Invalid("--renew-before", "%d is negative", renewBefore)
	}
	if renewBefore >= days {
		return errs.Invalid("--renew-before", "%d days is not less than the certificate's %d days: it would be reissued on every run", renewBefore, days)
	}
	return nil
}

// EnsureServer makes the broker's server certificate cover the requested
// names. The existing certificate is kept when it chains to the CA, its key
// matches, it carries every requested name and IP, it has the requested key
// type and more than RenewBefore days left; otherwise it is reissued and the
// change says why. The broker's copy of ca.crt is kept equal to the CA's.
func EnsureServer(sys system.System, o ServerOptions) (Result, error) {
	var res Result
	o.defaults()
	if err := pki.CheckDays("--days", o.Days, pki.ServerDays); err != nil {
		return res, err
	}
	if err := checkRenewWindow(o.RenewBefore, o.Days); err != nil {
		return res, err
	}
	dns, ips, err := pki.ParseNames(o.Names, o.IPs)
	if err != nil {
		return res, err
	}
	if len(dns)+len(ips) == 0 {
		return res, errs.Invalid("--name", "a server certificate needs at least one name or IP")
	}
	ca, err := LoadCA(sys, o.Paths)
	if err != nil {
		return res, err
	}
	unlock, err := lockBrokerCerts(&res, sys, o.Paths)
	if err != nil {
		return res, err
	}
	defer unlock()
	reason, err := serverReissueReason(sys, o.Paths, ca, dns, ips, o.KeyType, o.RenewBefore)
	if err != nil {
		return res, err
	}
	var issued *pki.Issued
	if reason != "" {
		issued, err = pki.IssueServer(randOr(o.Rand), sys.Now(), ca, pki.ServerRequest{Names: o.Names, IPs: o.IPs, KeyType: keptKeyType(sys, o.Paths.ServerCert, o.KeyType), Days: o.Days})
		if err != nil {
			return res, err
		}
	}
	return res, writeServer(&res, sys, o.Paths, ca, issued, reason)
}

// lockBrokerCerts creates the broker's certificate folder when missing and
// locks it. Lock, then read, then write: two runs at once (cron and a
// person, or certbot's hook) can't both decide to reissue and interleave
// their files.
func lockBrokerCerts(res *Result, sys system.System, p Paths) (unlock func(), err error) {
	if err := createDir(res, sys, whatBrokerDir, p.BrokerDir, brokerDirAttr); err != nil {
		return nil, err
	}
	return sys.Lock(p.ServerCert)
}

// serverFiles are the broker's key and certificate; a fallback owner (no
// mosquitto user on this system) is reported as a warning.
func serverFiles(res *Result, sys system.System, p Paths) certFiles {
	keyAttr, fallback := serverKeyAttr(sys)
	if fallback != "" {
		res.WarnNoAccount(p.ServerKey, layout.BrokerUser, fallback)
	}
	return certFiles{whatServerKey, p.ServerKey, keyAttr, whatServerCert, p.ServerCert, publicAttr}
}

// serverReissueReason says why the server certificate must be (re)issued,
// or "" when the one on disk is fine. kt == "" accepts any key type.
func serverReissueReason(sys system.System, p Paths, ca *pki.CA, dns []string, ips []net.IP, kt pki.KeyType, renewBefore int) (string, error) {
	cert, reason, err := readLeaf(sys, p.ServerCert, p.ServerKey)
	if err != nil || reason != "" {
		return reason, err
	}
	now := sys.Now()
	if reason := chainReason(cert, ca, x509.ExtKeyUsageServerAuth, now); reason != "" {
		return reason, nil
	}
	if missing := pki.Missing(cert, dns, ips); len(missing) > 0 {
		return "does not cover " + strings.Join(missing, ", "), nil
	}
	return dueReason(cert, ca, kt, renewBefore, now), nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// writeServer writes a new server key and certificate (issued != nil) or
// re-asserts the owner and mode of the existing ones, and the broker's
// ca.crt. The caller holds the lock.
func writeServer(res *Result, sys system.System, p Paths, ca *pki.CA, issued *pki.Issued, reason string) error {
	files := serverFiles(res, sys, p)
	if err := write(res, sys, whatBrokerCA, p.BrokerCA, pki.EncodeCertificate(ca.Cert.Raw), publicAttr, ""); err != nil {
		return err
	}
	// The reload comes at the end of the command, after both files.
	if _, _, err := files.writeIssued(res, sys, issued, reason); err != nil {
		return err
	}
	reloadIfChanged(res, p.BrokerCA, p.ServerKey, p.ServerCert)
	return nil
}

func describeLeaf(c *x509.Certificate) string {
	s := "CN=" + c.Subject.CommonName
	if sans := pki.SANs(c); len(sans) > 0 {
		s += ", SANs " + strings.Join(sans, " ")
	}
	return s + ", " + string(pki.KeyTypeOf(c.PublicKey)) + ", until " + c.NotAfter.Format(time.DateOnly)
}
