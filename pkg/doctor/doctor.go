// Package doctor checks a mosquitto installation from the inside: owners and
// modes, the password file, listeners, certificates, drift since the last
// apply, the package and the service. Each finding says what is wrong, why it
// matters and the command that fixes it. It reads; it never writes.
package doctor

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// Severity of a finding: errors make doctor exit 1.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding IDs, stable for scripts and the README.
const (
	IDCAKeyReadable    = "ca-key-readable"
	IDSecretUnreadable = "secret-unreadable"
	IDSecretExposed    = "secret-exposed"
	IDSecretOwner      = "secret-owner"
	IDPasswdLine       = "passwd-line"
	IDPlainListener    = "plain-listener"
	IDWebSocketBind    = "websocket-bind"
	IDListenerClash    = "listener-clash"
	IDCertMissing      = "cert-missing"
	IDCertNoSAN        = "cert-no-san"
	IDCertName         = "cert-name"
	IDCertAddress      = "cert-address"
	IDCertExpired      = "cert-expired"
	IDCertExpiring     = "cert-expiring"
	IDCertUntrusted    = "cert-untrusted"
	IDDrift            = "drift"
	IDPackageMissing   = "package-missing"
	IDServiceInactive  = "service-inactive"
	IDServiceDisabled  = "service-disabled"
	IDServiceUnchecked = "service-unchecked"
	IDSpecMissing      = "spec-missing"
	IDNoState          = "no-state"
	IDSymlink          = "managed-symlink"
)

// Finding is one problem.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about: a file (with :LINE), a listener.
	Subject string `json:"subject,omitempty"`
	Problem string `json:"problem"`
	Why     string `json:"why"`
	Fix     string `json:"fix"`
	// Detail is further evidence (journal lines), one entry per line.
	Detail []string `json:"detail,omitempty"`
}

// Fact is something doctor learned that is not a problem (versions, states).
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Report is everything doctor found.
type Report struct {
	Facts    []Fact    `json:"facts"`
	Findings []Finding `json:"findings"`
}

// Count is the number of findings of severity s.
func (r Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Service is what doctor asks systemd (a *systemd.Service).
type Service interface {
	Manageable() (bool, string)
	Status(ctx context.Context) (systemd.Status, error)
}

// Checker holds what doctor looks at.
type Checker struct {
	Sys     system.System
	Service Service
	// Spec is broker.yaml, nil when there is none (checks then use the
	// files and defaults alone).
	Spec     *spec.Spec
	SpecPath string
	// Host gives the machine's current addresses (a Pi that got a new DHCP
	// address); tests give their own.
	Host certs.Host
	// MainConf is the broker's main configuration file (default layout.MosquittoConf).
	MainConf string

	r      Report
	broker *system.Account
	cfg    *conf.Broker
	ver    string
}

// Run does every check.
func (c *Checker) Run(ctx context.Context) Report {
	c.r = Report{Facts: []Fact{}, Findings: []Finding{}}
	if c.MainConf == "" {
		c.MainConf = layout.MosquittoConf
	}
	if acct, err := c.Sys.LookupUser(layout.BrokerUser); err == nil {
		c.broker = &acct
	}
	if b, err := conf.ReadBroker(c.Sys, c.MainConf); err == nil {
		c.cfg = b
	}
	c.checkPackage(ctx)
	c.checkSpec()
	c.checkFiles()
	c.checkPasswordFile()
	c.checkListeners()
	c.checkCertificate()
	c.checkCRL()
	c.checkDrift()
	c.checkBridges()
	c.checkDatabase()
	c.checkService(ctx)
	sort.SliceStable(c.r.Findings, func(i, j int) bool {
		return rank(c.r.Findings[i].Severity) < rank(c.r.Findings[j].Severity)
	})
	return c.r
}

func rank(s Severity) int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

func (c *Checker) add(f Finding) { c.r.Findings = append(c.r.Findings, f) }

func (c *Checker) fact(name, format string, args ...any) {
	c.r.Facts = append(c.r.Facts, Fact{Name: name, Value: fmt.Sprintf(format, args...)})
}

// setting is the last value of a global setting in the broker's files.
func (c *Checker) setting(name string) (conf.Setting, bool) {
	if c.cfg == nil {
		return conf.Setting{}, false
	}
	var found conf.Setting
	ok := false
	for _, s := range c.cfg.Settings {
		if s.Name == name {
			found, ok = s, true
		}
	}
	return found, ok
}

func (c *Checker) checkPackage(ctx context.Context) {
	pkgs, err := apt.Query(ctx, c.Sys, "mosquitto")
	if err != nil || len(pkgs) == 0 || !pkgs[0].Installed() {
		problem := "the mosquitto package is not installed"
		if err != nil {
			problem = "the mosquitto package's state can't be read: " + err.Error()
		}
		c.add(Finding{ID: IDPackageMissing, Severity: Error, Subject: "mosquitto",
			Problem: problem,
			Why:     "there is no broker to run",
			Fix:     "sudo mosqprov install"})
		return
	}
	c.ver = pkgs[0].Version
	c.fact("mosquitto", "%s", c.ver)
}

func (c *Checker) checkSpec() {
	if c.Spec == nil {
		c.add(Finding{ID: IDSpecMissing, Severity: Info, Subject: c.SpecPath,
			Problem: "no broker.yaml: names and listeners are checked against the files alone",
			Why:     "without the spec doctor can't tell which names clients use or what apply last wanted",
			Fix:     "sudo mosqprov setup   (or write " + layout.Spec + " and run `sudo mosqprov apply`)"})
		return
	}
	c.fact("spec", "%s", c.SpecPath)
}

// secretFiles are the files only the broker may read, as the configuration
// names them (mosqprov's paths when it doesn't).
func (c *Checker) secretFiles() []secretFile {
	pw, acl := layout.PasswordFile, layout.ACLFile
	if s, ok := c.setting("password_file"); ok {
		pw = s.Value
	}
	if s, ok := c.setting("acl_file"); ok {
		acl = s.Value
	}
	return []secretFile{
		{pw, "password file", "its hashes can be cracked offline by whoever reads them"},
		{acl, "ACL file", "it tells every user's topics to whoever reads it"},
		{layout.ServerKey, "server key", "whoever reads it can impersonate the broker to every client"},
	}
}

type secretFile struct{ path, what, exposure string }

func fixOwner(path string) string {
	return fmt.Sprintf("sudo chown %s:%s %s && sudo chmod 600 %s", layout.BrokerUser, layout.BrokerUser, path, path)
}

func (c *Checker) owner(fi system.FileInfo) string {
	who := func(id int, name string) string {
		switch {
		case c.broker != nil && id == c.broker.UID && name == "user":
			return layout.BrokerUser
		case c.broker != nil && id == c.broker.GID && name == "group":
			return layout.BrokerUser
		case id == 0:
			return "root"
		}
		return fmt.Sprint(id)
	}
	return fmt.Sprintf("owner %s:%s, mode %04o", who(fi.UID, "user"), who(fi.GID, "group"), fi.Mode)
}

// readableByBroker applies the permission bits the kernel would for the
// broker's user (its primary group only).
func (c *Checker) readableByBroker(fi system.FileInfo) bool {
	if c.broker == nil {
		return fi.Mode&0o004 != 0
	}
	switch {
	case fi.UID == c.broker.UID:
		return fi.Mode&0o400 != 0
	case fi.GID == c.broker.GID:
		return fi.Mode&0o040 != 0
	}
	return fi.Mode&0o004 != 0
}

// checkSymlinks names every managed file that is a symlink as one: its
// mode is the link's (0777), not the file's, and mosqprov refuses to read
// or write through it, as mosquitto 2.1 opens its password and ACL files
// with O_NOFOLLOW.
func (c *Checker) checkSymlinks() map[string]bool {
	links := map[string]bool{}
	paths := []string{layout.CAKey, layout.CACert, layout.BrokerCACert, layout.ServerCert, layout.DropIn, state.File}
	for _, f := range c.secretFiles() {
		paths = append(paths, f.path)
	}
	for _, p := range paths {
		fi, err := c.Sys.Stat(p)
		if err != nil || !fi.Symlink || links[p] {
			continue
		}
		links[p] = true
		target := "?"
		var le *system.LinkError
		if _, err := c.Sys.ReadFile(p); errors.As(err, &le) {
			target = le.Target
		}
		c.add(Finding{ID: IDSymlink, Severity: Error, Subject: p,
			Problem: fmt.Sprintf("%s is a symlink to %s, not a file", p, target),
			Why:     "mosqprov never reads or writes the files it manages through a symlink, so apply and the user and cert commands refuse it; mosquitto 2.1 refuses a linked password or ACL file too, and whoever can change the link chooses what the broker reads",
			Fix:     fmt.Sprintf("sudo cp --remove-destination \"$(readlink -f %s)\" %s   (then run doctor again)", p, p)})
	}
	return links
}

func (c *Checker) checkFiles() {
	links := c.checkSymlinks()
	// The CA key: the broker never needs it.
	for _, p := range []string{layout.CAKey, layout.BrokerCertDir + "/ca.key", layout.MosquittoDir + "/ca_certificates/ca.key"} {
		fi, err := c.Sys.Stat(p)
		if err != nil || links[p] {
			continue
		}
		switch {
		case c.broker != nil && c.readableByBroker(fi):
			c.add(Finding{ID: IDCAKeyReadable, Severity: Error, Subject: p,
				Problem: fmt.Sprintf("the CA private key is readable by the broker's user %s (%s)", layout.BrokerUser, c.owner(fi)),
				Why:     "the broker never needs it, and whoever can read it can mint certificates every client trusts",
				Fix:     fmt.Sprintf("sudo chown root:root %s && sudo chmod 600 %s", p, p)})
		case fi.Mode&0o044 != 0:
			c.add(Finding{ID: IDCAKeyReadable, Severity: Error, Subject: p,
				Problem: fmt.Sprintf("the CA private key is readable by users other than root (%s)", c.owner(fi)),
				Why:     "whoever can read it can mint certificates every client trusts",
				Fix:     fmt.Sprintf("sudo chown root:root %s && sudo chmod 600 %s", p, p)})
		}
	}
	if c.broker == nil {
		return
	}
	for _, f := range c.secretFiles() {
		fi, err := c.Sys.Stat(f.path)
		if err != nil || links[f.path] {
			continue
		}
		if !c.readableByBroker(fi) {
			c.add(Finding{ID: IDSecretUnreadable, Severity: Error, Subject: f.path,
				Problem: fmt.Sprintf("the %s is not readable by the broker's user %s (%s)", f.what, layout.BrokerUser, c.owner(fi)),
				Why:     "since 2.0 the broker opens it after dropping to " + layout.BrokerUser + ": it fails to start, or keeps the old copy on reload",
				Fix:     fixOwner(f.path)})
			continue
		}
		switch {
		case fi.Mode&0o004 != 0:
			c.add(Finding{ID: IDSecretExposed, Severity: Error, Subject: f.path,
				Problem: fmt.Sprintf("the %s is readable by every user on this machine (%s)", f.what, c.owner(fi)),
				Why:     f.exposure + "; mosquitto 2.0.16 and later warn about it and say a future version will refuse it",
				Fix:     fixOwner(f.path)})
		case fi.Mode&0o040 != 0 && fi.GID != c.broker.GID:
			c.add(Finding{ID: IDSecretExposed, Severity: Warning, Subject: f.path,
				Problem: fmt.Sprintf("the %s is readable by a group other than %s (%s)", f.what, layout.BrokerUser, c.owner(fi)),
				Why:     f.exposure,
				Fix:     fixOwner(f.path)})
		case fi.UID != c.broker.UID:
			c.add(Finding{ID: IDSecretOwner, Severity: Warning, Subject: f.path,
				Problem: fmt.Sprintf("the %s is not owned by %s (%s)", f.what, layout.BrokerUser, c.owner(fi)),
				Why:     "mosquitto 2.0.16 and later (Debian 13) warn when a sensitive file's owner is not the broker's user, and say a future version will refuse to open it",
				Fix:     fixOwner(f.path)})
		}
	}
}

func (c *Checker) checkPasswordFile() {
	p := c.secretFiles()[0].path
	data, err := c.Sys.ReadFile(p)
	if err != nil {
		return
	}
	for _, f := range passwd.Inspect(data) {
		sev, why := Error, ""
		switch f.Kind {
		case passwd.Crypt:
			// The problem already names the tools that write such lines.
			why = "this user can never log in until the line holds a hash Mosquitto makes"
		case passwd.Plaintext:
			why = "a password in clear: the broker rejects it, and anyone who reads the file learns it"
		case passwd.Duplicate:
			sev, why = Warning, "the broker uses only one of the lines; the other password silently stops working"
		case passwd.Ignored:
			sev, why = Warning, "the broker skips the line: whoever it was meant for can't log in"
		default:
			why = "the broker rejects the line: nobody can log in with it"
		}
		c.add(Finding{ID: IDPasswdLine, Severity: sev, Subject: fmt.Sprintf("%s:%d", p, f.Line),
			Problem: f.String(), Why: why, Fix: c.passwdFix(p, f)})
	}
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

func (c *Checker) specUser(name string) bool {
	if c.Spec == nil {
		return false
	}
	for _, u := range c.Spec.Users {
		if u.Name == name {
			return true
		}
	}
	return false
}
func validUser(u string) bool { return passwd.ValidateName(u) == nil }

func (c *Checker) checkListeners() {
	if c.cfg == nil {
		return
	}
	ls := c.cfg.Listeners
	anonymous := false
	if s, ok := c.setting("allow_anonymous"); ok {
		anonymous = s.Value == "true"
	}
	for i, l := range ls {
		where := fmt.Sprintf("%s:%d", l.File, l.Line)
		for _, o := range ls[:i] {
			if o.Port == l.Port && (o.Bind == l.Bind || conf.IsWildcard(o.Bind) || conf.IsWildcard(l.Bind) || o.WebSockets || l.WebSockets) {
				c.add(Finding{ID: IDListenerClash, Severity: Error, Subject: where,
					Problem: fmt.Sprintf("port %d is declared again here; it is already at %s:%d", l.Port, o.File, o.Line),
					Why:     "the broker can't open the same port twice: it stops with \"Address already in use\"",
					Fix:     clashFix(o, l)})
			}
		}
		loop := conf.IsLoopback(l.Bind)
		wsOld := l.WebSockets && c.wsBindIgnored()
		if !l.TLS && (!loop || wsOld) {
			kind := "plain MQTT"
			if l.WebSockets {
				kind = "plain WebSockets"
			}
			reach := "every interface"
			if !conf.IsWildcard(l.Bind) {
				reach = l.Bind
			}
			if loop {
				reach = "every interface (mosquitto " + c.ver + " ignores the bind address of WebSocket listeners)"
			}
			sev := Warning
			why := "user names and passwords cross the network in clear; anyone on the LAN can read them"
			if anonymous {
				sev, why = Error, "anonymous access is on: anyone on the network can publish and subscribe, in clear"
			}
			c.add(Finding{ID: IDPlainListener, Severity: sev, Subject: where,
				Problem: fmt.Sprintf("%s listener on port %d is reachable on %s", kind, l.Port, reach),
				Why:     why,
				Fix:     plainFix(l)})
		}
		if l.WebSockets && !conf.IsWildcard(l.Bind) && c.wsBindIgnored() && !(loop && !l.TLS) {
			c.add(Finding{ID: IDWebSocketBind, Severity: Warning, Subject: where,
				Problem: fmt.Sprintf("WebSocket listener on port %d is bound to %s, but mosquitto %s listens on every interface for WebSocket listeners", l.Port, l.Bind, c.ver),
				Why:     "the port is reachable from the network whatever the bind address (upstream issues 3045 and 2085)",
				Fix:     wsFirewallFix(l)})
		}
	}
}

// ours reports whether a listener is in mosqprov's drop-in, i.e. comes
// from broker.yaml: it is fixed there, not by editing the file.
func ours(l conf.Declared) bool { return l.File == layout.DropIn }

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

// wsBindIgnored: mosquitto up to 2.0.11 (Debian 12, Raspberry Pi OS
// bookworm) listens on every interface for a WebSocket listener whatever
// its bind address (upstream issues 3045 and 2085; reported gone in 2.0.12).
func (c *Checker) wsBindIgnored() bool {
	v, err := apt.ParseVersion(c.ver)
	if err != nil {
		return false
	}
	return !v.AtLeast(2, 1) && (v.Major < 2 || v.Patch <= 11)
}

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

func (c *Checker) checkDrift() {
	st, err := state.Load(c.Sys)
	if err != nil || st == nil {
		if c.Spec != nil {
			c.add(Finding{ID: IDNoState, Severity: Info, Subject: state.File,
				Problem: "no record of a previous apply: hand edits can't be told apart",
				Why:     "doctor compares the files with what the last apply left",
				Fix:     "sudo mosqprov apply"})
		}
		return
	}
	c.fact("last apply", "%s", st.Applied)
	for _, d := range st.Drift(c.Sys) {
		problem := "changed by hand since the last apply (" + st.Applied + ")"
		if d.Removed {
			problem = "removed since the last apply (" + st.Applied + ")"
		}
		c.add(Finding{ID: IDDrift, Severity: Warning, Subject: d.Path, Problem: problem,
			Why: "the next apply puts back what broker.yaml says, undoing the edit; a hand edit belongs in broker.yaml",
			Fix: "sudo mosqprov plan   (shows the difference), then put the change in " + layout.Spec + " and `sudo mosqprov apply`"})
	}
}

func (c *Checker) checkService(ctx context.Context) {
	if c.Service == nil {
		return
	}
	if ok, why := c.Service.Manageable(); !ok {
		fix := "run doctor without --root on the broker's machine"
		if c.Sys.Root() == "/" {
			fix = "none needed in a container or chroot; there, start the broker with `mosquitto -c " + layout.MosquittoConf + "`"
		}
		c.add(Finding{ID: IDServiceUnchecked, Severity: Info, Subject: systemd.Unit,
			Problem: "the service was not checked: " + why,
			Why:     "doctor asks systemd whether the broker runs",
			Fix:     fix})
		return
	}
	st, err := c.Service.Status(ctx)
	if err != nil {
		c.add(Finding{ID: IDServiceInactive, Severity: Error, Subject: systemd.Unit,
			Problem: "the service can't be queried: " + err.Error(),
			Why:     "no broker runs without its unit",
			Fix:     "sudo mosqprov install"})
		return
	}
	enabled := st.Enabled
	c.fact("service", "%s (%s), %s", st.ActiveState, st.SubState, enabled)
	switch {
	case st.ActiveState == "active" || st.ActiveState == "reloading":
	case st.ActiveState == "activating" && st.SubState != "auto-restart":
		c.add(Finding{ID: IDServiceInactive, Severity: Warning, Subject: systemd.Unit,
			Problem: "the broker is starting (" + st.SubState + ")",
			Why:     "clients can't connect until it is up",
			Fix:     "run doctor again in a moment; `journalctl -u mosquitto` shows progress"})
	default:
		state := st.ActiveState
		if st.SubState == "auto-restart" {
			state = "failing; systemd keeps restarting it"
		}
		f := Finding{ID: IDServiceInactive, Severity: Error, Subject: systemd.Unit,
			Problem: "the broker is not running (" + state + ")",
			Why:     "no client can connect",
			Fix:     "fix what the journal says, then sudo mosqprov service start   (journalctl -u mosquitto -n 50 shows more)"}
		lines := st.Journal
		if last := lastError(lines); last != "" {
			f.Problem += "; last journal error: " + last
		}
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		f.Detail = lines
		c.add(f)
	}
	wantEnabled := c.Spec == nil || c.Spec.Service.Enabled()
	if wantEnabled && enabled != "enabled" && enabled != "static" {
		c.add(Finding{ID: IDServiceDisabled, Severity: Warning, Subject: systemd.Unit,
			Problem: "the service is not enabled (" + enabled + ")",
			Why:     "the broker won't start after a reboot",
			Fix:     "sudo mosqprov service enable"})
	}
}

// lastError picks the journal line that most likely says why the broker
// stopped: the last one mosquitto marked as an error, else systemd's.
func lastError(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if strings.Contains(l, "Error") || strings.Contains(l, "error") || strings.Contains(l, "Unable") || strings.Contains(l, "Failed") {
			if _, msg, ok := strings.Cut(l, "]: "); ok {
				return strings.TrimSpace(msg)
			}
			return strings.TrimSpace(l)
		}
	}
	return ""
}
