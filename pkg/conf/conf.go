// Package conf is the broker's configuration: a model of the listeners and
// the authentication settings mosqprov manages, its validation, rendering
// from templates/mosquitto.conf.tmpl, a converge function that writes it,
// a reader of the broker's other configuration files, and the checks of
// `mosqprov conf check`.
package conf

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// Type is a listener's kind.
type Type string

const (
	MQTT  Type = "mqtt"  // plain MQTT
	MQTTS Type = "mqtts" // MQTT over TLS
	WS    Type = "ws"    // MQTT over WebSockets
	WSS   Type = "wss"   // MQTT over WebSockets with TLS
)

// Types lists the listener types in the order people meet them.
var Types = []Type{MQTT, MQTTS, WS, WSS}

// DefaultPort is the conventional port of a listener type.
func (t Type) DefaultPort() int {
	switch t {
	case MQTT:
		return 1883
	case MQTTS:
		return 8883
	case WS:
		return 8080
	case WSS:
		return 9443
	}
	return 0
}

// TLS versions the broker accepts as tls_version. TLS 1.1 (which 2.0.11
// also takes) is left out on purpose: RFC 8996 deprecates it.
const (
	TLS12 = "tlsv1.2"
	TLS13 = "tlsv1.3"
	// DefaultTLSVersion is the article's choice and what every ESP32,
	// Android and browser TLS stack of the last decade speaks.
	DefaultTLSVersion = TLS12
)

// Listener is one listening port.
type Listener struct {
	Type Type `json:"type"`
	Port int  `json:"port"`
	// Bind is an IP address; empty means every interface (IPv4 and IPv6).
	Bind string `json:"bind,omitempty"`
	// MutualTLS makes a TLS listener require a client certificate signed by
	// the CA and take its CN as the user name.
	MutualTLS bool `json:"mutual_tls,omitempty"`
	// TLSVersion is the minimum TLS version (TLS listeners only; default tlsv1.2).
	TLSVersion string `json:"tls_version,omitempty"`
	// Auth is who may log in here, when the configuration is PerListener.
	Auth *ListenerAuth `json:"auth,omitempty"`
	// MaxConnections limits the listener's clients (0: not written, the
	// broker's unlimited).
	MaxConnections int `json:"max_connections,omitempty"`
}

// TLS reports whether the listener speaks TLS.
func (l Listener) TLS() bool { return l.Type == MQTTS || l.Type == WSS }

// WebSockets reports whether the listener speaks MQTT over WebSockets.
func (l Listener) WebSockets() bool { return l.Type == WS || l.Type == WSS }

// Protocol is the listener's mosquitto `protocol` value.
func (l Listener) Protocol() string {
	if l.WebSockets() {
		return "websockets"
	}
	return "mqtt"
}

// Title is the comment above the listener's block.
func (l Listener) Title() string {
	var s string
	switch l.Type {
	case MQTT:
		s = "MQTT, plain"
	case MQTTS:
		s = "MQTT over TLS"
	case WS:
		s = "MQTT over WebSockets, plain"
	case WSS:
		s = "MQTT over WebSockets with TLS"
	}
	switch {
	case IsWildcard(l.Bind):
		s += ", every interface"
	case l.WebSockets():
		s += ", bound to " + l.Bind + " (mosquitto 2.0.11 listens on every interface anyway)"
	case IsLoopback(l.Bind):
		s += ", this machine only"
	default:
		s += ", on " + l.Bind
	}
	if l.MutualTLS {
		s += ", client certificate required (its CN is the user name)"
	}
	return s
}

// Standalone holds what Debian's mosquitto.conf would otherwise provide,
// for a complete file on other layouts.
type Standalone struct {
	PIDFile        string `json:"pid_file"`
	PersistenceDir string `json:"persistence_location"`
	LogFile        string `json:"log_file"`
}

// DebianStandalone is Debian's own mosquitto.conf settings.
func DebianStandalone() *Standalone {
	return &Standalone{
		PIDFile:        "/run/mosquitto/mosquitto.pid",
		PersistenceDir: "/var/lib/mosquitto/",
		LogFile:        "/var/log/mosquitto/mosquitto.log",
	}
}

// Config is the configuration mosqprov renders.
type Config struct {
	AllowAnonymous bool `json:"allow_anonymous"`
	// PasswordFile is left out when empty.
	PasswordFile string `json:"password_file,omitempty"`
	// ACLFile is left out when empty: set it only when the ACL file has
	// rules, because an acl_file without rules denies every client everything.
	ACLFile   string     `json:"acl_file,omitempty"`
	CertFile  string     `json:"certfile"`
	KeyFile   string     `json:"keyfile"`
	CAFile    string     `json:"cafile"`
	Listeners []Listener `json:"listeners"`
	// Standalone, when set, renders a complete file instead of a conf.d drop-in.
	Standalone *Standalone `json:"standalone,omitempty"`
	// Tunables are broker-wide settings (broker.yaml's `broker:`).
	Tunables Tunables `json:"tunables,omitzero"`
	// CRLFile, when set, is the crlfile of every mutual-TLS listener: the
	// CA's revocation list (`mosqprov cert revoke`). Left out until something
	// is revoked, so no CRL can expire under a broker that never needed one.
	CRLFile string `json:"crlfile,omitempty"`
	// PerListener writes authentication per listener (each Listener's
	// Auth) in AuthForm's way; AllowAnonymous and PasswordFile are then
	// unused, ACLFile applies on every listener. False keeps the global
	// form (per_listener_settings false, the broker's default).
	PerListener bool   `json:"per_listener,omitempty"`
	AuthForm    string `json:"auth_form,omitempty"`
	// PluginDir holds mosquitto_password_file.so and mosquitto_acl_file.so
	// (AuthForm21): /usr/lib/<multiarch>/mosquitto on Debian.
	PluginDir string `json:"plugin_dir,omitempty"`
	// MaxConnectionsOnReload says the installed broker applies a
	// listener's new max_connections on SIGHUP (MaxConnectionsReloads):
	// Write then asks a reload, not a restart, when only max_connections
	// changed. Not rendered.
	MaxConnectionsOnReload bool `json:"-"`
}

// MaxConnectionsReloads reports whether mosquitto major.minor applies a
// listener's new max_connections on SIGHUP, as measured with the real
// brokers (TestTunablesTakeEffect): 2.1.2 does; 2.0.11 and 2.0.21 keep the
// old limit until a restart.
func MaxConnectionsReloads(major, minor int) bool {
	return major > 2 || major == 2 && minor >= 1
}

// TunableLines are the configuration lines of c.Tunables.
func (c Config) TunableLines() []string { return c.Tunables.Lines() }

// Default is the article's three listeners: plain MQTT on loopback only,
// MQTT over TLS on 8883 and WebSockets over TLS on 9443, with the password
// file and certificates where mosqprov puts them.
func Default() Config {
	return Config{
		PasswordFile: layout.PasswordFile,
		CertFile:     layout.ServerCert,
		KeyFile:      layout.ServerKey,
		CAFile:       layout.BrokerCACert,
		Listeners: []Listener{
			{Type: MQTT, Port: 1883, Bind: LoopbackBind},
			{Type: MQTTS, Port: 8883},
			{Type: WSS, Port: 9443},
		},
	}
}

// WithDefaults fills what a caller may leave out: the TLS version of TLS
// listeners.
func (c Config) WithDefaults() Config {
	c.Listeners = append([]Listener(nil), c.Listeners...)
	for i := range c.Listeners {
		if c.Listeners[i].TLS() && c.Listeners[i].TLSVersion == "" {
			c.Listeners[i].TLSVersion = DefaultTLSVersion
		}
	}
	return c
}

// HasTLS reports whether any listener speaks TLS.
func (c Config) HasTLS() bool {
	for _, l := range c.Listeners {
		if l.TLS() {
			return true
		}
	}
	return false
}

// Validate checks every value before it reaches the template, so no input
// can add a line or a directive, and refuses what the broker would refuse.
// Call it on WithDefaults().
func (c Config) Validate() error {
	if len(c.Listeners) == 0 {
		return errs.Invalid("--listener", "at least one listener is needed")
	}
	if err := ValidatePath("--password-file", c.PasswordFile, true); err != nil {
		return err
	}
	if err := ValidatePath("--acl-file", c.ACLFile, true); err != nil {
		return err
	}
	if err := ValidatePath("--crlfile", c.CRLFile, true); err != nil {
		return err
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if c.HasTLS() {
		for _, f := range []struct{ field, v string }{{"--cert", c.CertFile}, {"--key", c.KeyFile}, {"--cafile", c.CAFile}} {
			if err := ValidatePath(f.field, f.v, false); err != nil {
				return err
			}
		}
	}
	if s := c.Standalone; s != nil {
		for _, f := range []struct{ field, v string }{{"--pid-file", s.PIDFile}, {"--persistence-dir", s.PersistenceDir}, {"--log-file", s.LogFile}} {
			if err := ValidatePath(f.field, f.v, false); err != nil {
				return err
			}
		}
	}
	if err := c.Tunables.Validate(); err != nil {
		return err
	}
	seen := map[int]Type{}
	plain := false
	for _, l := range c.Listeners {
		if err := l.Validate(); err != nil {
			return err
		}
		if t, dup := seen[l.Port]; dup {
			return errs.Invalid("--listener", "port %d is used by both %s and %s; each listener needs its own port", l.Port, t, l.Type)
		}
		seen[l.Port] = l.Type
		if !l.WebSockets() {
			plain = true
		}
	}
	if !plain {
		// 2.0.11 exits with "Unable to start any listening sockets" when
		// every listener is a WebSockets one (checked, REFERENCE.md).
		return errs.Invalid("--listener", "at least one listener must be mqtt or mqtts: mosquitto 2.0 refuses to start with WebSockets listeners only")
	}
	return nil
}

// Validate checks one listener.
func (l Listener) Validate() error {
	field := "--listener " + string(l.Type)
	switch l.Type {
	case MQTT, MQTTS, WS, WSS:
	default:
		return errs.Invalid("--listener", "type %q is not mqtt, mqtts, ws or wss", printable(string(l.Type)))
	}
	if l.Port < 1 || l.Port > 65535 {
		return errs.Invalid(field, "port %d is not between 1 and 65535", l.Port)
	}
	if l.Bind != "" {
		if _, err := ParseBind(l.Bind); err != nil {
			return errs.Invalid(field, "%v", err)
		}
	}
	if l.MaxConnections != 0 {
		if err := CheckRange(field+" max_connections", "max_connections", l.MaxConnections); err != nil {
			return err
		}
	}
	if !l.TLS() {
		if l.MutualTLS {
			return errs.Invalid(field, "mutual TLS needs a TLS listener (mqtts or wss)")
		}
		if l.TLSVersion != "" {
			return errs.Invalid(field, "tls_version applies to TLS listeners (mqtts or wss) only")
		}
		return nil
	}
	switch l.TLSVersion {
	case TLS12, TLS13:
	case "tlsv1.1", "tlsv1":
		return errs.Invalid("--tls-version", "%s is deprecated (RFC 8996); use tlsv1.2 or tlsv1.3", l.TLSVersion)
	default:
		return errs.Invalid("--tls-version", "%q is not tlsv1.2 or tlsv1.3", printable(l.TLSVersion))
	}
	return nil
}

// ParseBind checks that s is an IP address the broker can bind and returns
// it. Host names are refused: for WebSockets listeners the broker takes
// only an IP address, and a name can resolve to something else tomorrow.
func ParseBind(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("bind address %q is not an IP address", printable(s))
	}
	return a, nil
}

// LoopbackBind is where plain MQTT listens when no address is given: it
// sends user names and passwords in clear, so it stays on this machine
// unless asked.
const LoopbackBind = "127.0.0.1"

// DefaultBind is the bind address of a listener of type t that names none:
// LoopbackBind for plain MQTT, every interface ("") for the others.
func (t Type) DefaultBind() string {
	if t == MQTT {
		return LoopbackBind
	}
	return ""
}

// LocalHost is where a client on the broker's own machine reaches a
// listener bound to bind: the bind address, or loopback when the listener
// is on every interface.
func LocalHost(bind string) string {
	switch bind {
	case "", "0.0.0.0":
		return LoopbackBind
	case "::":
		return "::1"
	}
	return bind
}

// IsLoopback reports whether host is this machine: a loopback address
// (IPv4-mapped ones too) or the name localhost.
func IsLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// IsWildcard reports whether a bind address means every interface.
func IsWildcard(bind string) bool {
	if bind == "" {
		return true
	}
	a, err := netip.ParseAddr(bind)
	return err == nil && a.IsUnspecified()
}

// BeyondLoopback reports whether the listener can be reached from other
// machines. WebSockets listeners always can on 2.0.11, which binds them to
// every interface whatever the address (upstream issues 3045, 2085).
func (l Listener) BeyondLoopback() bool {
	return l.WebSockets() || !IsLoopback(l.Bind)
}

// ValidatePath checks a file path that lands in the configuration: absolute,
// clean, and made only of printable characters that are neither blanks nor
// '#', so it stays one value on one line.
func ValidatePath(field, p string, optional bool) error {
	switch {
	case p == "" && optional:
		return nil
	case p == "":
		return errs.Invalid(field, "empty")
	case !utf8.ValidString(p):
		return errs.Invalid(field, "%q is not valid UTF-8", printable(p))
	case strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '#' }) >= 0:
		return errs.Invalid(field, "%q contains a blank, a control character or '#'; a configuration value must be one word on one line", printable(p))
	case !path.IsAbs(p):
		return errs.Invalid(field, "%q is not an absolute path", p)
	case path.Clean(p) != p && path.Clean(p)+"/" != p:
		return errs.Invalid(field, "%q is not a clean path (write %s)", p, path.Clean(p))
	case len(p) > 4095:
		return errs.Invalid(field, "longer than PATH_MAX (4095 bytes)")
	}
	return nil
}

// printable quotes s safely for a one-line error message.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// WebSocketsCRLWarning says that a mutual-TLS WebSockets listener doesn't
// check the CRL: mosquitto 2.0 (2.0.11 and 2.0.21 seen here) checks crlfile
// only on MQTT listeners, so a revoked certificate still connects over wss
// (mosquitto issue 3042); 2.1.2 refuses it.
func WebSocketsCRLWarning(l Listener) string {
	return fmt.Sprintf("the %s listener on port %d does not check the revocation list (mosquitto issue 3042): mosquitto 2.0 lets a revoked client certificate connect there; use mqtts for devices that may need revoking, or mosquitto 2.1", l.Type, l.Port)
}
