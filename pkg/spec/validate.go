package spec

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// MinVersions are the min_version values: pkg/conf's tls_version values
// (tlsv1 and tlsv1.1, which mosquitto 2.0 also takes, are deprecated by
// RFC 8996).
var MinVersions = []string{conf.TLS12, conf.TLS13}

// ListenerTypes are the listener type values, pkg/conf's.
var ListenerTypes = func() []string {
	var out []string
	for _, t := range conf.Types {
		out = append(out, string(t))
	}
	return out
}()

// Validate checks every field; the first problem is returned, with its
// place in the file when the spec was loaded from one.
func (s *Spec) Validate() error {
	for _, check := range []func() (string, error){
		s.validateNames, s.validateTLS, s.validateListeners, s.validateUsers, s.validateACL, s.validateBridges, s.validateBroker, s.validateRevoked, s.validateListenerAuth, s.validateStatusReader,
	} {
		if path, err := check(); err != nil {
			return s.At(path, err)
		}
	}
	return nil
}

func (s *Spec) validateNames() (string, error) {
	if s.Hostname != "" {
		if err := pki.ValidateDNSName("hostname", s.Hostname); err != nil {
			return "hostname", err
		}
	}
	for i, n := range s.Names {
		f := fmt.Sprintf("names[%d]", i)
		if err := pki.ValidateDNSName(f, n); err != nil {
			return f, err
		}
	}
	sans := len(s.Names) + len(s.IPs)
	if s.Hostname != "" {
		sans++
	}
	if sans > MaxNames {
		return "names", errs.Invalid("names", "hostname, names and ips give %d certificate names; at most %d are allowed (docs/reference.md, Limits)", sans, MaxNames)
	}
	for i, ip := range s.IPs {
		f := fmt.Sprintf("ips[%d]", i)
		if _, err := netip.ParseAddr(ip); err != nil || strings.Contains(ip, "%") {
			return f, errs.Invalid(f, "%q is not an IP address", ip)
		}
	}
	return "", nil
}

func (s *Spec) validateTLS() (string, error) {
	t := s.TLS
	if _, err := pki.ParseKeyType("tls.key_type", t.KeyType); err != nil {
		return "tls.key_type", err
	}
	if err := pki.CheckDays("tls.server_days", t.ServerDays, pki.ServerDays); err != nil {
		return "tls.server_days", err
	}
	if t.RenewBeforeDays < 0 || t.RenewBeforeDays >= t.ServerDays {
		return "tls.renew_before_days", errs.Invalid("tls.renew_before_days", "%d must be at least 0 and less than server_days (%d)", t.RenewBeforeDays, t.ServerDays)
	}
	if err := oneOf("tls.min_version", t.MinVersion, MinVersions); err != nil {
		return "tls.min_version", err
	}
	if err := pki.ValidateCommonName("tls.ca_name", t.CAName); err != nil {
		return "tls.ca_name", err
	}
	return "", nil
}

// validateListeners checks each listener field by field, so an error
// points at the value in the file, then hands the listeners to pkg/conf's
// own validation (the `conf` command's rules) as the final word.
func (s *Spec) validateListeners() (string, error) {
	used := map[int]int{}
	for i, l := range s.Listeners {
		f := fmt.Sprintf("listeners[%d]", i)
		if err := oneOf(f+".type", l.Type, ListenerTypes); err != nil {
			return f + ".type", err
		}
		if l.Port < 1 || l.Port > 65535 {
			return f + ".port", errs.Invalid(f+".port", "%d is not a port (1-65535)", l.Port)
		}
		if j, dup := used[l.Port]; dup {
			// Mosquitto binds WebSocket listeners to every interface whatever
			// the bind address (upstream issues 3045, 2085), so one port per listener.
			return f + ".port", errs.Invalid(f+".port", "%d is already used by listeners[%d]", l.Port, j)
		}
		used[l.Port] = i
		if l.Bind != "" {
			if _, err := conf.ParseBind(l.Bind); err != nil {
				return f + ".bind", errs.Invalid(f+".bind", "%v", err)
			}
		}
		if l.MaxConnections != nil {
			if err := conf.CheckRange(f+".max_connections", "max_connections", *l.MaxConnections); err != nil {
				return f + ".max_connections", err
			}
		}
		if l.TLS() && s.Hostname == "" {
			// Missing, so it has no place: point at the listener that needs it.
			return f, errs.Invalid("hostname", "needed for the server certificate of the %s listener on port %d", l.Type, l.Port)
		}
		// Type, port, bind and the TLS version (validateTLS) are checked, so
		// what conf can still refuse here is mutual_tls on a plain listener.
		field := f
		if l.MutualTLS {
			field = f + ".mutual_tls"
		}
		if err := refield(field, s.ConfListener(l).Validate()); err != nil {
			return field, err
		}
	}
	// The set as a whole: at least one listener, and not only WebSockets ones.
	set := conf.Config{CertFile: layout.ServerCert, KeyFile: layout.ServerKey, CAFile: layout.BrokerCACert}
	for _, l := range s.Listeners {
		set.Listeners = append(set.Listeners, s.ConfListener(l))
	}
	if err := refield("listeners", set.Validate()); err != nil {
		return "listeners", err
	}
	return "", nil
}

func (s *Spec) validateUsers() (string, error) {
	if len(s.Users) > MaxUsers {
		return "users", errs.Invalid("users", "%d items; at most %d are allowed (docs/reference.md, Limits)", len(s.Users), MaxUsers)
	}
	seen := map[string]int{}
	for i, u := range s.Users {
		f := fmt.Sprintf("users[%d]", i)
		if err := refield(f+".name", passwd.ValidateName(u.Name)); err != nil {
			return f + ".name", err
		}
		if j, dup := seen[u.Name]; dup {
			return f + ".name", errs.Invalid(f+".name", "%q is already listed as users[%d]", u.Name, j)
		}
		seen[u.Name] = i
		n := 0
		for _, v := range []string{u.PasswordEnv, u.PasswordFile, u.Hash} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return f, errs.Invalid(f, "user %q needs exactly one of password_env, password_file or hash (has %d)", u.Name, n)
		}
		if u.PasswordEnv != "" && !envName(u.PasswordEnv) {
			return f + ".password_env", errs.Invalid(f+".password_env", "%q is not an environment variable name", u.PasswordEnv)
		}
		if u.Hash != "" {
			if _, err := passwd.ParseHash(u.Hash); err != nil {
				return f + ".hash", errs.Invalid(f+".hash", "%s; make one with `mosqprov user hash`", errs.Problem(err))
			}
		}
		if u.PasswordFile != "" {
			if err := validateText(f+".password_file", u.PasswordFile, 4096); err != nil {
				return f + ".password_file", err
			}
		}
	}
	return "", nil
}

func (s *Spec) validateACL() (string, error) {
	if len(s.ACL) > MaxRules {
		return "acl", errs.Invalid("acl", "%d items; at most %d are allowed (docs/reference.md, Limits)", len(s.ACL), MaxRules)
	}
	for i, r := range s.ACL {
		f := fmt.Sprintf("acl[%d]", i)
		whom := 0
		for _, set := range []bool{r.User != "", r.Pattern, r.Anonymous} {
			if set {
				whom++
			}
		}
		if whom != 1 {
			return f, errs.Invalid(f, "say whom the rule is for with exactly one of user, pattern: true or anonymous: true")
		}
		if r.Anonymous && !s.AllowAnonymous && !s.AnyAnonymous() {
			return f + ".anonymous", errs.Invalid(f+".anonymous", "a rule for anonymous clients needs allow_anonymous: true")
		}
		kind, user := r.whom()
		if r.User != "" {
			if err := refield(f+".user", acl.ValidateUser(r.User)); err != nil {
				return f + ".user", err
			}
		}
		total := 0
		for _, list := range r.lists() {
			for j, t := range list.Topics {
				tf := fmt.Sprintf("%s.%s[%d]", f, list.Access, j)
				rule := acl.Rule{Kind: kind, User: user, Access: list.Access, Topic: t}
				if err := refield(tf, rule.Validate()); err != nil {
					return tf, err
				}
				total++
			}
		}
		if total == 0 {
			return f, errs.Invalid(f, "no topics: give read, write, readwrite or deny")
		}
		if total > MaxTopics {
			return f, errs.Invalid(f, "%d topics; at most %d are allowed in one rule (docs/reference.md, Limits)", total, MaxTopics)
		}
	}
	return "", nil
}

// validateText refuses an empty or overlong value, or one with control
// characters (a path with a newline is a mistake, never a file name).
func validateText(field, v string, max int) error {
	if v == "" {
		return errs.Invalid(field, "empty")
	}
	if len(v) > max {
		return errs.Invalid(field, "longer than %d characters", max)
	}
	for _, c := range v {
		if unicode.IsControl(c) {
			return errs.Invalid(field, "contains a control character (%q)", c)
		}
	}
	return nil
}

func envName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// oneOf refuses v unless it is one of allowed.
func oneOf(field, v string, allowed []string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return errs.Invalid(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// refield puts a single-step command's validation error under the spec's
// field name, so the error points at the place in the file.
func refield(field string, err error) error {
	var ie *errs.InputError
	if errors.As(err, &ie) {
		return errs.Invalid(field, "%s", ie.Problem)
	}
	return err
}

// topicList is one access's topics of a rule.
type topicList struct {
	Access acl.Access
	Topics []string
}

func (r ACLRule) lists() []topicList {
	return []topicList{{acl.AccessRead, r.Read}, {acl.AccessWrite, r.Write}, {acl.AccessReadWrite, r.ReadWrite}, {acl.AccessDeny, r.Deny}}
}

// whom is whom the rule is for, in pkg/acl's terms.
func (r ACLRule) whom() (acl.Kind, string) {
	switch {
	case r.Pattern:
		return acl.KindPattern, ""
	case r.Anonymous:
		return acl.KindAnonymous, ""
	}
	return acl.KindUser, r.User
}

// Rules is the rule in pkg/acl's terms.
func (r ACLRule) Rules() []acl.Rule {
	kind, user := r.whom()
	var out []acl.Rule
	for _, l := range r.lists() {
		for _, t := range l.Topics {
			out = append(out, acl.Rule{Kind: kind, User: user, Access: l.Access, Topic: t})
		}
	}
	return out
}
