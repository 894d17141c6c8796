// Package spec is broker.yaml: the whole broker described in one file. It
// holds the types, a strict decoder whose every error carries line:column,
// the defaults, and the validation (the same rules the single-step commands
// apply to their flags).
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"

	"go.yaml.in/yaml/v3"

	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Spec is the desired state of the broker. Field comments are the reference
// the README and schema/broker.schema.json repeat; a test keeps them in step.
type Spec struct {
	// Hostname is the broker's main DNS name: the server certificate's
	// first subjectAltName. Required when a TLS listener exists.
	Hostname string `yaml:"hostname,omitempty" json:"hostname,omitempty"`
	// Names are further DNS names for the server certificate.
	Names []string `yaml:"names,omitempty" json:"names,omitempty"`
	// IPs are IP addresses for the server certificate.
	IPs []string `yaml:"ips,omitempty" json:"ips,omitempty"`
	TLS TLS      `yaml:"tls" json:"tls"`
	// Listeners default to plain MQTT on 127.0.0.1:1883 and MQTT over TLS on 8883.
	Listeners []Listener `yaml:"listeners" json:"listeners"`
	// AllowAnonymous lets clients connect without a user name (default false).
	AllowAnonymous bool   `yaml:"allow_anonymous" json:"allow_anonymous"`
	Users          []User `yaml:"users,omitempty" json:"users,omitempty"`
	// PruneUsers removes users of the password file that the spec doesn't
	// list. Off by default: such users are left alone and listed as unmanaged.
	PruneUsers bool      `yaml:"prune_users" json:"prune_users"`
	ACL        []ACLRule `yaml:"acl,omitempty" json:"acl,omitempty"`
	Service    Service   `yaml:"service" json:"service"`
	Package    Package   `yaml:"package" json:"package"`
	// Bridges connect this broker to others (cloud brokers, another Pi).
	Bridges []Bridge `yaml:"bridges,omitempty" json:"bridges,omitempty"`
	// Broker are broker-wide settings; each one left out keeps the broker's
	// own default (Debian's mosquitto.conf's for persistence and log_dest).
	Broker Broker `yaml:"broker,omitempty" json:"broker,omitzero"`
	// StatusReader creates the identity `mosqprov status` reads $SYS as
	// (user mosqprov-status, random password root-only, ACL: read $SYS/#
	// only). Needs acl rules: without an ACL file every user may use every
	// topic, that identity included. Default false.
	StatusReader bool `yaml:"status_reader,omitempty" json:"status_reader,omitempty"`

	// Revoked are client certificates (names under /etc/mosqprov/clients)
	// put on the CA's revocation list, which the mutual-TLS listeners check:
	// what `mosqprov cert revoke NAME` does. Nothing is ever taken off it.
	Revoked []string `yaml:"revoked,omitempty" json:"revoked,omitempty"`

	// pos maps a field path ("users[1].name") to where it stands in the file.
	pos map[string]Pos
	// set holds the field paths the file gives a value (not null), so a
	// written 0 is validated as 0 instead of replaced by the default.
	set  map[string]bool
	file string
}

// TLS is the private CA and the server certificate.
type TLS struct {
	// KeyType of the CA and server keys: rsa-2048 (default; what every ESP32
	// and Android TLS stack accepts), rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384.
	KeyType string `yaml:"key_type" json:"key_type"`
	// ServerDays is the server certificate's validity, 1..825 (default 825:
	// the most Apple platforms accept for a TLS server certificate).
	ServerDays int `yaml:"server_days" json:"server_days"`
	// RenewBeforeDays renews the server certificate when it expires within
	// this many days (default 30); 0 <= value < server_days.
	RenewBeforeDays int `yaml:"renew_before_days" json:"renew_before_days"`
	// MinVersion is mosquitto's tls_version: tlsv1.2 (default) or tlsv1.3.
	MinVersion string `yaml:"min_version" json:"min_version"`
	// CAName is the private CA's common name (default "mosqprov CA
	// HOSTNAME", pki.DefaultCAName). Only
	// used when the CA is created; an existing CA is kept.
	CAName string `yaml:"ca_name" json:"ca_name"`
}

// Listener is one listening port of the broker.
type Listener struct {
	// Type is mqtt, mqtts (MQTT over TLS), ws (WebSockets) or wss (WebSockets over TLS).
	Type string `yaml:"type" json:"type"`
	// Port defaults to 1883, 8883, 8080, 9443 for the four types.
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	// Bind is an IP address to listen on; empty means every interface, except
	// for plain mqtt, which defaults to 127.0.0.1 because on the LAN it sends
	// passwords in clear (write 0.0.0.0 to mean it).
	Bind string `yaml:"bind,omitempty" json:"bind,omitempty"`
	// MutualTLS requires a client certificate signed by the CA (TLS types only).
	MutualTLS bool `yaml:"mutual_tls,omitempty" json:"mutual_tls,omitempty"`
	// MaxConnections limits the listener's clients, 1..1000000 (default
	// unlimited). Above what the unit's open-file limit allows, apply adds a
	// systemd drop-in raising LimitNOFILE.
	MaxConnections *int `yaml:"max_connections,omitempty" json:"max_connections,omitempty"`
	// AllowAnonymous lets clients without a user name in on this listener
	// only (default: the top-level allow_anonymous). Setting it, or Users,
	// on any listener makes authentication per listener.
	AllowAnonymous *bool `yaml:"allow_anonymous,omitempty" json:"allow_anonymous,omitempty"`
	// Users are the only users who may log in with a password on this
	// listener (default: every user of the password file).
	Users []string `yaml:"users,omitempty" json:"users,omitempty"`
}

// Listener types: pkg/conf's, as strings, so broker.yaml means what
// `mosqprov conf` means.
const (
	MQTT  = string(conf.MQTT)
	MQTTS = string(conf.MQTTS)
	WS    = string(conf.WS)
	WSS   = string(conf.WSS)
)

// DefaultPort is the conventional port of a listener type.
func DefaultPort(typ string) int { return conf.Type(typ).DefaultPort() }

// TLS reports whether the listener speaks TLS.
func (l Listener) TLS() bool { return conf.Listener{Type: conf.Type(l.Type)}.TLS() }

// WebSockets reports whether the listener speaks MQTT over WebSockets.
func (l Listener) WebSockets() bool { return conf.Listener{Type: conf.Type(l.Type)}.WebSockets() }

// User is one entry of the password file. Exactly one of PasswordEnv,
// PasswordFile and Hash says where its password comes from, so a spec kept
// in git holds no plaintext.
type User struct {
	Name string `yaml:"name" json:"name"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	// PasswordFile is a file whose first line is the password. It is read
	// on the machine running mosqprov, never under --root: like the -f spec
	// file, a secret is the caller's input, and an image built under --root
	// should not have to hold it. A relative path is relative to the spec's
	// folder.
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// Hash is a Mosquitto hash ($7$... or $6$...), from `mosqprov user hash`.
	Hash string `yaml:"hash,omitempty" json:"hash,omitempty"`
}

// ACLRule gives one user, every user (pattern) or clients without a user
// name (anonymous) access to topics. Exactly one of User, Pattern and
// Anonymous says whom.
type ACLRule struct {
	// User the rule is for.
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// Pattern makes it a rule of every user: %u in a topic is the user name,
	// %c the client id.
	Pattern bool `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	// Anonymous makes it a rule of clients without a user name (with
	// allow_anonymous: true).
	Anonymous bool     `yaml:"anonymous,omitempty" json:"anonymous,omitempty"`
	Read      []string `yaml:"read,omitempty" json:"read,omitempty"`
	Write     []string `yaml:"write,omitempty" json:"write,omitempty"`
	ReadWrite []string `yaml:"readwrite,omitempty" json:"readwrite,omitempty"`
	Deny      []string `yaml:"deny,omitempty" json:"deny,omitempty"`
}

// Service is the mosquitto systemd unit.
type Service struct {
	// Enable starts the broker at boot (default true).
	Enable *bool `yaml:"enable,omitempty" json:"enable,omitempty"`
}

// Package is the mosquitto Debian package.
type Package struct {
	// Install installs mosquitto (and mosquitto-clients) when missing (default true).
	Install *bool `yaml:"install,omitempty" json:"install,omitempty"`
}

// Enabled is Service.Enable with its default.
func (s Service) Enabled() bool { return s.Enable == nil || *s.Enable }

// Installed is Package.Install with its default.
func (p Package) Installed() bool { return p.Install == nil || *p.Install }

// ConfListener is l in pkg/conf's terms, with the spec's TLS version.
func (s *Spec) ConfListener(l Listener) conf.Listener {
	cl := conf.Listener{Type: conf.Type(l.Type), Port: l.Port, Bind: l.Bind, MutualTLS: l.MutualTLS}
	if l.MaxConnections != nil {
		cl.MaxConnections = *l.MaxConnections
	}
	if l.TLS() {
		cl.TLSVersion = s.TLS.MinVersion
	}
	return cl
}

// Pos is a place in the spec file.
type Pos struct{ Line, Column int }

// Default is the spec a fresh broker starts from: plain MQTT on loopback,
// MQTT over TLS on every interface, no anonymous access, no users yet.
func Default(hostname string) *Spec {
	s := &Spec{
		Hostname: hostname,
		Listeners: []Listener{
			{Type: MQTT, Port: 1883, Bind: conf.LoopbackBind},
			{Type: MQTTS, Port: 8883},
		},
	}
	s.SetDefaults()
	return s
}

// CertNames are the names and addresses the spec puts on the broker's
// server certificate: the hostname first (it becomes the CN), then the
// other names; the IP addresses apart.
func (s *Spec) CertNames() (names, ips []string) {
	if s.Hostname != "" {
		names = append(names, s.Hostname)
	}
	names = append(names, s.Names...)
	return names, append([]string(nil), s.IPs...)
}

// SetDefaults fills every unset field with its default.
func (s *Spec) SetDefaults() {
	if s.TLS.KeyType == "" {
		s.TLS.KeyType = string(pki.RSA2048)
	}
	if s.TLS.ServerDays == 0 && !s.set["tls.server_days"] {
		s.TLS.ServerDays = pki.ServerDays
	}
	if s.TLS.RenewBeforeDays == 0 && !s.set["tls.renew_before_days"] {
		s.TLS.RenewBeforeDays = certs.DefaultRenewBefore
	}
	if s.TLS.MinVersion == "" {
		s.TLS.MinVersion = conf.DefaultTLSVersion
	}
	if s.TLS.CAName == "" {
		// Only a CA created from now on gets it: an existing CA is kept
		// whatever its name (certs.EnsureCA), so no broker's CA is reissued
		// because this default changed.
		s.TLS.CAName = pki.DefaultCAName(s.Hostname)
	}
	if s.Listeners == nil {
		s.Listeners = []Listener{{Type: MQTT}, {Type: MQTTS}}
	}
	for i := range s.Listeners {
		l := &s.Listeners[i]
		if l.Port == 0 && !s.set[fmt.Sprintf("listeners[%d].port", i)] {
			l.Port = DefaultPort(l.Type)
		}
		if l.Bind == "" {
			l.Bind = conf.Type(l.Type).DefaultBind()
		}
	}
	t := true
	if s.Service.Enable == nil {
		s.Service.Enable = &t
	}
	if s.Package.Install == nil {
		s.Package.Install = &t
	}
}

// File is the path the spec was loaded from ("" when built in code).
func (s *Spec) File() string { return s.file }

// Position is where path (or its closest parent) stands in the file.
func (s *Spec) Position(path string) (Pos, bool) {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := s.pos[p]; ok {
			return pos, true
		}
	}
	return Pos{}, false
}

// Load reads, decodes, defaults and validates a spec. An empty path is the
// default, layout.Spec on sys (so under --root); any other path is a file on
// the machine running mosqprov (-f FILE). Errors name the file as it can be
// opened here.
func Load(sys system.System, path string) (*Spec, error) {
	var data []byte
	var err error
	if path == "" || path == sys.HostPath(layout.Spec) {
		// The managed spec (commands pass it as its host path): read
		// through sys, so inside --root and never through a symlink.
		path = sys.HostPath(layout.Spec)
		data, err = sys.ReadFile(layout.Spec)
	} else {
		data, err = system.ReadInputFile("spec", path, system.MaxSpec)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errs.Invalid("spec", "%s does not exist (write one, or run `mosqprov setup`)", path)
		}
		if errs.IsInput(err) {
			return nil, err
		}
		return nil, fmt.Errorf("read spec %s: %w", path, err)
	}
	s, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse decodes data strictly and fills in defaults; it does not validate.
func Parse(name string, data []byte) (*Spec, error) {
	s := &Spec{file: name, pos: map[string]Pos{}, set: map[string]bool{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{File: name, Pos: Pos{1, 1}, Err: errs.Invalid("spec", "the file is empty")}
	}
	if err := decodeStrict(name, data, s); err != nil {
		return nil, err
	}
	s.SetDefaults()
	return s, nil
}

// Marshal writes s as broker.yaml, defaults included, so the file says
// everything the broker will be.
func Marshal(s *Spec) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# broker.yaml: the whole broker. Apply with `mosqprov apply`; see `mosqprov plan` first.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Error is a spec problem at a place in the file. It wraps an
// *errs.InputError, so it exits 3.
type Error struct {
	File string
	Pos  Pos
	Err  error
}

func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Pos.Line, e.Pos.Column, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// At places a problem of the field at path (or its closest parent) in the
// spec file, so it reads FILE:LINE:COLUMN: field: problem.
func (s *Spec) At(path string, err error) error {
	if err == nil {
		return nil
	}
	pos, _ := s.Position(path)
	if s.file == "" {
		return err
	}
	return &Error{File: s.file, Pos: pos, Err: err}
}
