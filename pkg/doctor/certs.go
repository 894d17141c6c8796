package doctor

// The server certificate: expiry, subjectAltNames, its chain to the CA,
// the spec's names and this machine's addresses.

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func (c *Checker) checkCertificate() {
	needTLS := c.Spec != nil && slices.ContainsFunc(c.Spec.Listeners, spec.Listener.TLS)
	if c.cfg != nil {
		for _, l := range c.cfg.Listeners {
			needTLS = needTLS || l.TLS
		}
	}
	data, err := c.Sys.ReadFile(layout.ServerCert)
	if err != nil {
		if needTLS {
			c.add(Finding{ID: IDCertMissing, Severity: Error, Subject: layout.ServerCert,
				Problem: "there is no server certificate, but TLS listeners are configured",
				Why:     "the broker can't start a TLS listener without it",
				Fix:     c.certFix("sudo mosqprov cert ca && sudo mosqprov cert server")})
		}
		return
	}
	cert, err := pki.ParseCertificate(data)
	if err != nil {
		c.add(Finding{ID: IDCertMissing, Severity: Error, Subject: layout.ServerCert,
			Problem: "the server certificate can't be read: " + err.Error(),
			Why:     "the broker can't start its TLS listeners",
			Fix:     c.certFix("sudo mosqprov cert server")})
		return
	}
	now := c.Sys.Now()
	days := pki.DaysLeft(cert, now)
	c.fact("server certificate", "%s, expires %s", sanText(cert), cert.NotAfter.UTC().Format("2006-01-02"))
	renewFix := "sudo mosqprov cert renew   (or sudo mosqprov apply)"
	switch {
	case now.After(cert.NotAfter):
		c.add(Finding{ID: IDCertExpired, Severity: Error, Subject: layout.ServerCert,
			Problem: "the server certificate expired on " + cert.NotAfter.UTC().Format("2006-01-02"),
			Why:     "every client that checks certificates refuses to connect",
			Fix:     renewFix})
	case days < c.renewBefore():
		c.add(Finding{ID: IDCertExpiring, Severity: Warning, Subject: layout.ServerCert,
			Problem: fmt.Sprintf("the server certificate expires in %d days (%s)", days, cert.NotAfter.UTC().Format("2006-01-02")),
			Why:     "clients refuse it from that day on",
			Fix:     renewFix})
	}
	if len(cert.DNSNames)+len(cert.IPAddresses) == 0 {
		c.add(Finding{ID: IDCertNoSAN, Severity: Error, Subject: layout.ServerCert,
			Problem: fmt.Sprintf("the server certificate has no subjectAltName, only CN %q", cert.Subject.CommonName),
			Why:     "Go, Python, Chromium, Android and iOS match host names against SANs only: they all refuse it",
			Fix:     c.certFix("sudo mosqprov cert server --name " + system.ShellQuote(firstNonEmpty(cert.Subject.CommonName, "HOSTNAME")))})
	}
	for _, p := range []string{layout.BrokerCACert, layout.CACert} {
		caData, err := c.Sys.ReadFile(p)
		if err != nil {
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caData) {
			continue
		}
		// At issue time: expiry is its own finding above.
		if verr := pki.Verify(cert, pool, nil, x509.ExtKeyUsageServerAuth, cert.NotBefore.Add(time.Minute)); verr != nil {
			c.add(Finding{ID: IDCertUntrusted, Severity: Error, Subject: layout.ServerCert,
				Problem: fmt.Sprintf("the server certificate does not verify against %s: %v", p, verr),
				Why:     "devices given that CA file refuse the broker",
				Fix:     c.certFix("sudo mosqprov cert server   (issues one from the CA)") + ", or give devices the CA that signed it"})
		}
		break
	}
	if c.Spec != nil {
		var missing []string
		for _, n := range specNames(c.Spec) {
			if cert.VerifyHostname(n) != nil {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			c.add(Finding{ID: IDCertName, Severity: Error, Subject: layout.ServerCert,
				Problem: fmt.Sprintf("%s in broker.yaml but not in the server certificate (it has %s)", strings.Join(missing, ", "), sanText(cert)),
				Why:     "clients connecting with those names refuse the certificate (\"host name mismatch\")",
				Fix:     "sudo mosqprov apply   (reissues the certificate with the spec's names)"})
		}
	}
	if c.Host != nil {
		addrs, _ := c.Host.Addrs()
		var missing []string
		for _, ip := range addrs {
			// IPv4 only: IPv6 addresses come and go with the provider's
			// prefix and privacy extensions, and devices on a LAN connect
			// by IPv4 or by name; a chosen IPv6 address is in the spec's
			// ips and checked above.
			if ip.To4() != nil && cert.VerifyHostname(ip.String()) != nil {
				missing = append(missing, ip.String())
			}
		}
		if len(missing) > 0 {
			fix := "add " + strings.Join(missing, ", ") + " to ips: in " + layout.Spec + ", then `sudo mosqprov apply`"
			if c.Spec == nil {
				fix = reissueWith(cert, missing)
			}
			c.add(Finding{ID: IDCertAddress, Severity: Warning, Subject: layout.ServerCert,
				Problem: fmt.Sprintf("this machine's address %s is not in the server certificate", strings.Join(missing, ", ")),
				Why:     "a device that connects by IP address refuses the certificate (a new DHCP lease does this)",
				Fix:     fix})
		}
	}
}

func (c *Checker) renewBefore() int {
	if c.Spec != nil && c.Spec.TLS.RenewBeforeDays > 0 {
		return c.Spec.TLS.RenewBeforeDays
	}
	return certs.DefaultRenewBefore
}

func specNames(s *spec.Spec) []string {
	names, ips := s.CertNames()
	return append(names, ips...)
}

func sanText(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no SANs"
	}
	return strings.Join(names, ", ")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
