package doctor

import (
	"fmt"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// Finding IDs of the revocation list.
const (
	IDCRLExpired    = "crl-expired"
	IDCRLExpiring   = "crl-expiring"
	IDCRLBroken     = "crl-broken"
	IDCRLWebSockets = "crl-websockets"
)

// checkCRL looks at the CA's revocation list (`cert revoke`): its next
// update (past it, the broker refuses every client certificate, mosquitto
// issue 1826), its copies, and mutual-TLS WebSockets listeners, which
// mosquitto 2.0 lets revoked certificates through (issue 3042).
func (c *Checker) checkCRL() {
	e, ok := certs.CheckCRL(c.Sys, certs.DefaultPaths(), pki.CRLRenewDays)
	if !ok {
		return
	}
	renew := "sudo mosqprov cert renew   (re-signs the list; keep it in the daily cron job)"
	if e.CRL != nil {
		c.fact("revocation list", "%d revoked, next update %s (%d days)", len(e.CRL.Revoked), e.NotAfter.Format(time.DateOnly), e.DaysLeft)
	}
	for _, p := range e.Problems {
		switch {
		case e.CRL != nil && c.Sys.Now().After(e.NotAfter) && strings.HasPrefix(p, "its next update"):
			c.add(Finding{ID: IDCRLExpired, Severity: Error, Subject: layout.BrokerCRL,
				Problem: fmt.Sprintf("the revocation list's next update was due on %s", e.NotAfter.Format(time.DateOnly)),
				Why:     "past that date the broker refuses every client certificate on the mutual-TLS listeners (mosquitto issue 1826)",
				Fix:     renew})
		case e.CRL != nil && strings.HasPrefix(p, "its next update"):
			c.add(Finding{ID: IDCRLExpiring, Severity: Warning, Subject: layout.BrokerCRL,
				Problem: fmt.Sprintf("the revocation list's next update is due in %d days (%s) and was not re-signed", e.DaysLeft, e.NotAfter.Format(time.DateOnly)),
				Why:     fmt.Sprintf("cert renew and apply re-sign it %d days before; past the date the broker refuses every client certificate (mosquitto issue 1826)", pki.CRLRenewDays),
				Fix:     renew})
		default:
			c.add(Finding{ID: IDCRLBroken, Severity: Error, Subject: layout.BrokerCRL,
				Problem: "revocation list: " + p,
				Why:     "the broker refuses to start, or revoked devices connect again",
				Fix:     renew})
		}
	}
	c.checkCRLWebSockets()
}

// checkCRLWebSockets names each mutual-TLS WebSockets listener of the
// mosqprov configuration that has a crlfile the broker ignores there:
// mosquitto 2.0.11 and 2.0.21 let a revoked certificate connect over wss
// (issue 3042, seen by TestApplyRevokedRealBroker); 2.1.2 refuses it.
func (c *Checker) checkCRLWebSockets() {
	if v, err := apt.ParseVersion(c.ver); err == nil && v.AtLeast(2, 1) {
		return
	}
	data, err := c.Sys.ReadFile(layout.DropIn)
	if err != nil {
		return
	}
	cfg, err := conf.Parse(data)
	if err != nil || cfg.CRLFile == "" {
		return
	}
	for _, l := range cfg.Listeners {
		if l.MutualTLS && l.WebSockets() {
			c.add(Finding{ID: IDCRLWebSockets, Severity: Warning, Subject: fmt.Sprintf("listener %d", l.Port),
				Problem: fmt.Sprintf("the %s listener on port %d requires client certificates but does not check the revocation list", l.Type, l.Port),
				Why:     "mosquitto 2.0 checks crlfile on MQTT listeners only (issue 3042): a revoked certificate still connects over WebSockets",
				Fix:     "move revocable devices to the mqtts listener, or upgrade to mosquitto 2.1 (Debian 14 / sid)"})
		}
	}
}
