package doctor

// The commands findings name as their fix.

import (
	"crypto/x509"
	"fmt"
	"net"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func fixOwner(path string) string {
	return fmt.Sprintf("sudo chown %s:%s %s && sudo chmod 600 %s", layout.BrokerUser, layout.BrokerUser, path, path)
}

// passwdFix rewrites a user broker.yaml holds from broker.yaml (user add
// would give it a password apply later undoes), any other user with
// `user add`, and has a line without a usable name removed by hand.
func (c *Checker) passwdFix(file string, f passwd.Finding) string {
	switch {
	case f.User != "" && c.specUser(f.User):
		return "sudo mosqprov apply   (rewrites the user's line from broker.yaml)"
	case f.User != "" && validUser(f.User) && f.Kind == passwd.Duplicate:
		return "sudo mosqprov user add " + system.ShellQuote(f.User) + "   (asks for the password, writes the user as one line)"
	case f.User != "" && validUser(f.User):
		return "sudo mosqprov user add " + system.ShellQuote(f.User) + "   (asks for a new password, stores a hash the broker accepts)"
	}
	return fmt.Sprintf("sudoedit %s   (remove line %d)", file, f.Line)
}

// clashFix points at the listener that is not mosqprov's: editing the
// drop-in is undone by the next apply.
func clashFix(first, again conf.Declared) string {
	switch {
	case ours(first) && ours(again):
		return "give one of the listeners another port in broker.yaml, then `sudo mosqprov apply`"
	case ours(again):
		return fmt.Sprintf("sudoedit %s   (remove the listener at line %d), or give broker.yaml's listener another port and `sudo mosqprov apply`", first.File, first.Line)
	case ours(first):
		return fmt.Sprintf("sudoedit %s   (remove the listener at line %d), or give broker.yaml's listener another port and `sudo mosqprov apply`", again.File, again.Line)
	}
	return fmt.Sprintf("sudoedit %s   (remove or renumber the listener at line %d)", again.File, again.Line)
}

// plainFix: a plain MQTT listener is made private by binding it to
// loopback; a plain WebSocket one can't be on 2.0.11 (the bind address is
// ignored), so it gives way to wss.
func plainFix(l conf.Declared) string {
	switch {
	case ours(l) && l.WebSockets:
		return "in broker.yaml replace the ws listener with {type: wss}, then `sudo mosqprov apply`"
	case ours(l):
		return "in broker.yaml set bind: 127.0.0.1 on the mqtt listener (devices use mqtts), then `sudo mosqprov apply`"
	case l.WebSockets:
		return fmt.Sprintf("sudoedit %s   (remove the listener at line %d; a wss listener in broker.yaml is the encrypted one)", l.File, l.Line)
	}
	return fmt.Sprintf("sudoedit %s   (line %d: `listener %d 127.0.0.1`, or remove it; devices use mqtts)", l.File, l.Line, l.Port)
}

// wsFirewallFix drops the port on every interface but loopback for
// packets not addressed to the bind address, with nftables (what Debian 12
// and Raspberry Pi OS bookworm ship). The table is mosqprov's own, so no
// existing ruleset is assumed; it lasts until reboot unless added to
// /etc/nftables.conf. Checked in a network namespace with nft 1.0.6.
func wsFirewallFix(l conf.Declared) string {
	family, other := "ip", "ipv6"
	if ip := net.ParseIP(l.Bind); ip != nil && ip.To4() == nil {
		family, other = "ip6", "ipv4"
	}
	return fmt.Sprintf(`sudo nft -f - <<< 'table inet mosqprov { chain input { type filter hook input priority 0; iifname != "lo" tcp dport %d %s daddr != %s drop; iifname != "lo" tcp dport %d meta nfproto %s drop; }; }'`,
		l.Port, family, l.Bind, l.Port, other)
}

// certFix is apply when there is a spec (cert server alone would drop
// broker.yaml's names, and the next apply would reissue again), else the
// cert command given.
func (c *Checker) certFix(withoutSpec string) string {
	if c.Spec != nil {
		return "sudo mosqprov apply   (issues the server certificate broker.yaml describes)"
	}
	return withoutSpec
}

// reissueWith is the cert server command that keeps every name of cert and
// adds the addresses given.
func reissueWith(cert *x509.Certificate, addrs []string) string {
	cmd := "sudo mosqprov cert server"
	names := cert.DNSNames
	if len(names) == 0 && cert.Subject.CommonName != "" {
		// A certificate without SANs (the article's) names its host in the CN.
		names = []string{cert.Subject.CommonName}
	}
	for _, n := range names {
		cmd += " --name " + system.ShellQuote(n)
	}
	for _, ip := range cert.IPAddresses {
		cmd += " --ip " + ip.String()
	}
	for _, a := range addrs {
		cmd += " --ip " + a
	}
	return cmd
}
