package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Severity says whether a finding stops the broker (error) or is worth
// knowing (warning).
type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Finding is one result of Check.
type Finding struct {
	Severity Severity `json:"severity"`
	// Check names the rule: invalid, include, port-clash, duplicate,
	// override, file, cleartext, websockets-bind, websockets-tls, auth.
	Check   string `json:"check"`
	Message string `json:"message"`
}

func (f Finding) String() string { return string(f.Severity) + ": " + f.Message }

// Failed reports whether any finding is an error.
func Failed(findings []Finding) bool {
	for _, f := range findings {
		if f.Severity == SevError {
			return true
		}
	}
	return false
}

// Check looks at cfg as it would be written to p, next to the rest of the
// broker's configuration (Debian's mosquitto.conf and its include_dir).
func Check(sys system.System, cfg Config, p string) []Finding {
	return CheckAgainst(sys, cfg, p, layout.MosquittoConf)
}

// CheckAgainst is Check with the broker's main file named.
func CheckAgainst(sys system.System, cfg Config, p, mainConf string) []Finding {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return []Finding{{SevError, "invalid", err.Error()}}
	}
	var out []Finding
	if cfg.Standalone == nil {
		out = append(out, checkBroker(sys, cfg, p, mainConf)...)
	}
	out = append(out, checkFiles(sys, cfg)...)
	return append(out, Warnings(cfg)...)
}

func checkBroker(sys system.System, cfg Config, p, mainConf string) []Finding {
	b, err := ReadBroker(sys, mainConf)
	if err != nil {
		return []Finding{{SevWarning, "include", fmt.Sprintf("%v; clashes with the rest of the broker's configuration were not checked", err)}}
	}
	var out []Finding
	included := p == mainConf
	for _, d := range b.IncludeDirs {
		if path.Clean(d) == path.Dir(p) && strings.HasSuffix(p, ".conf") {
			included = true
		}
	}
	if !included {
		out = append(out, Finding{SevError, "include", fmt.Sprintf("%s does not include %s (include_dir %s, files ending in .conf): the broker would never read it", mainConf, p, path.Dir(p))})
	}
	ours := -1
	for i, f := range b.Files {
		if f == p {
			ours = i
		}
	}
	for _, l := range cfg.Listeners {
		for _, d := range b.Listeners {
			if d.File == p || d.Port != l.Port || !overlap(l.Bind, l.WebSockets(), d.Bind, d.WebSockets) {
				continue
			}
			out = append(out, Finding{SevError, "port-clash", fmt.Sprintf("port %d (%s) is also a listener in %s:%d; the broker would fail with \"Address already in use\"", l.Port, l.Type, d.File, d.Line)})
		}
	}
	for _, s := range b.Settings {
		if s.File == p {
			continue
		}
		switch {
		case s.Name == "password_file" && cfg.PasswordFile != "", s.Name == "acl_file" && cfg.ACLFile != "":
			out = append(out, Finding{SevError, "duplicate", fmt.Sprintf("%s is also set in %s:%d; the broker refuses to start (\"Duplicate %s value in configuration\")", s.Name, s.File, s.Line, s.Name)})
		case s.Name == "allow_anonymous" && s.Value != fmt.Sprint(cfg.AllowAnonymous) && readAfter(b.Files, s.File, ours):
			out = append(out, Finding{SevWarning, "override", fmt.Sprintf("allow_anonymous %s in %s:%d is read after %s and wins over its allow_anonymous %v", s.Value, s.File, s.Line, p, cfg.AllowAnonymous)})
		case s.Name == "per_listener_settings" && s.Value == "true":
			out = append(out, Finding{SevWarning, "override", fmt.Sprintf("per_listener_settings true in %s:%d: password_file, acl_file and allow_anonymous then apply only to the listener they follow", s.File, s.Line)})
		}
	}
	return out
}

// readAfter reports whether file is read after the file at index ours
// (ours < 0: our file is not read at all, so anything wins).
func readAfter(files []string, file string, ours int) bool {
	for i, f := range files {
		if f == file {
			return ours < 0 || i > ours
		}
	}
	return false
}

// overlap reports whether two listeners on the same port would fight over
// it. 2.0.11 binds WebSockets listeners to every interface whatever the
// address (upstream issues 3045, 2085), so they overlap everything.
func overlap(a string, aWS bool, b string, bWS bool) bool {
	if aWS || bWS || IsWildcard(a) || IsWildcard(b) {
		return true
	}
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		// A host name: can't tell without resolving it; assume the worst.
		return true
	}
	return x.Unmap() == y.Unmap()
}

func checkFiles(sys system.System, cfg Config) []Finding {
	type ref struct{ what, p string }
	var refs []ref
	if cfg.PasswordFile != "" {
		refs = append(refs, ref{"password_file", cfg.PasswordFile})
	}
	seen := map[string]bool{cfg.PasswordFile: true}
	for _, l := range cfg.Listeners {
		if l.Auth != nil && l.Auth.PasswordFile != "" && !seen[l.Auth.PasswordFile] {
			seen[l.Auth.PasswordFile] = true
			refs = append(refs, ref{fmt.Sprintf("password_file of listener %d", l.Port), l.Auth.PasswordFile})
		}
	}
	if cfg.ACLFile != "" {
		refs = append(refs, ref{"acl_file", cfg.ACLFile})
	}
	if cfg.HasTLS() {
		refs = append(refs, ref{"certfile", cfg.CertFile}, ref{"keyfile", cfg.KeyFile}, ref{"cafile", cfg.CAFile})
	}
	var out []Finding
	acct, err := sys.LookupUser(layout.BrokerUser)
	if err != nil {
		out = append(out, Finding{SevWarning, "file", fmt.Sprintf("user %s does not exist (is mosquitto installed?): whether the broker can read its files was not checked", layout.BrokerUser)})
	}
	for _, r := range refs {
		if msg := unreadable(sys, r.p, acct, err == nil); msg != "" {
			sev := SevError
			if strings.Contains(msg, "symlink") {
				sev = SevWarning
			}
			out = append(out, Finding{sev, "file", fmt.Sprintf("%s %s %s", r.what, r.p, msg)})
		}
	}
	return out
}

// unreadable says why the broker's user can't read p, or "" when it can.
// Since 2.0 the broker opens every file after dropping to that user.
func unreadable(sys system.System, p string, acct system.Account, checkPerms bool) string {
	fi, err := sys.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "does not exist; the broker would not start"
	}
	if err != nil {
		return fmt.Sprintf("can't be read: %v", err)
	}
	if fi.IsDir {
		return "is a folder, not a file"
	}
	if !checkPerms {
		return ""
	}
	if fi.Symlink {
		return "is a symlink: its target's permissions were not checked (mosquitto 2.1 refuses symlinked password and ACL files)"
	}
	if !allowed(fi, acct, 4) {
		return fmt.Sprintf("is not readable by user %s (owner %d:%d, mode %04o); the broker would not start", acct.Name, fi.UID, fi.GID, fi.Mode)
	}
	for dir := path.Dir(p); dir != "/" && dir != "."; dir = path.Dir(dir) {
		di, err := sys.Stat(dir)
		if err != nil || di.Symlink {
			continue
		}
		if !allowed(di, acct, 1) {
			return fmt.Sprintf("is behind folder %s, which user %s can't enter (owner %d:%d, mode %04o); the broker would not start", dir, acct.Name, di.UID, di.GID, di.Mode)
		}
	}
	return ""
}

// allowed checks one permission bit (4 read, 1 search) for acct, by the
// owner, group, other rule. Supplementary groups are not considered.
func allowed(fi system.FileInfo, acct system.Account, bit fs.FileMode) bool {
	switch {
	case acct.UID == 0:
		return true
	case fi.UID == acct.UID:
		return fi.Mode&(bit<<6) != 0
	case fi.GID == acct.GID:
		return fi.Mode&(bit<<3) != 0
	}
	return fi.Mode&bit != 0
}

// Warnings are what a person should know about cfg itself, whatever else is
// on the machine. Render and write print them too.
func Warnings(cfg Config) []Finding {
	cfg = cfg.WithDefaults()
	var out []Finding
	mtls := false
	for _, l := range cfg.Listeners {
		if l.MutualTLS {
			mtls = true
		}
		where := "every interface"
		if !IsWildcard(l.Bind) {
			where = l.Bind
		}
		if !l.TLS() && l.BeyondLoopback() {
			out = append(out, Finding{SevWarning, "cleartext", fmt.Sprintf("%s listener on port %d is reachable from other machines (%s) without TLS: user names and passwords cross the network in clear", l.Type, l.Port, where)})
		}
		if l.WebSockets() && !IsWildcard(l.Bind) {
			out = append(out, Finding{SevWarning, "websockets-bind", fmt.Sprintf("%s listener on port %d: mosquitto 2.0.11 binds WebSockets listeners to every interface whatever the bind address (upstream issues 3045, 2085); %s is not enforced", l.Type, l.Port, l.Bind)})
		}
		if l.Type == WSS && l.TLSVersion == TLS13 {
			out = append(out, Finding{SevWarning, "websockets-tls", fmt.Sprintf("wss listener on port %d: mosquitto 2.0.11 ignores tls_version on WebSockets listeners, so TLS 1.2 clients still connect (checked)", l.Port)})
		}
	}
	auth := cfg.PasswordFile != "" || cfg.AllowAnonymous
	for _, l := range cfg.Listeners {
		// Per listener, each says who may log in (PerListener).
		auth = auth || l.Auth != nil && (l.Auth.PasswordFile != "" || l.Auth.AllowAnonymous)
	}
	if !auth && !mtls {
		out = append(out, Finding{SevWarning, "auth", "no password_file, no anonymous access and no mutual TLS listener: no client can connect"})
	}
	return out
}
