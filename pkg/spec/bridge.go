package spec

import (
	"errors"
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/errs"
)

// Bridge is a connection to another broker (a cloud broker, another Pi):
// topics forwarded out, in or both ways. Its secrets stay out of the file:
// the remote password comes from the environment or a file, and the TLS
// files are read on the machine running mosqprov and installed under
// /etc/mosquitto/bridges with the owner and mode the broker needs.
type Bridge struct {
	// Name of the connection: letters, digits, '-', '_', '.'.
	Name string `yaml:"name" json:"name"`
	// Addresses of the remote broker, host:port ([v6]:port), in failover
	// order: the first is the main one.
	Addresses []string      `yaml:"addresses" json:"addresses"`
	Topics    []BridgeTopic `yaml:"topics" json:"topics"`
	// TLS to the remote: ca_file or system_ca (and optionally a client
	// certificate). Without it the bridge speaks plain TCP, which is only
	// allowed to this machine unless insecure_plain_tcp is set.
	TLS BridgeTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// InsecurePlainTCP accepts plain TCP (password and messages in clear)
	// to another machine; apply warns every time.
	InsecurePlainTCP bool `yaml:"insecure_plain_tcp,omitempty" json:"insecure_plain_tcp,omitempty"`
	// Username on the remote broker.
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	// PasswordEnv names an environment variable holding the remote password.
	PasswordEnv string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	// PasswordFile is a file (on the machine running mosqprov) whose first
	// line is the remote password; relative to the spec's folder.
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// Protocol is the MQTT version to the remote: "3.1.1" (default) or "5".
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// ClientID on the remote broker (default NAME.HOSTNAME.XXXXXXXX, from the
	// host's name and machine id, so two Pis never clash).
	ClientID string `yaml:"client_id,omitempty" json:"client_id,omitempty"`
	// CleanSession drops the remote session when the bridge disconnects
	// (mosquitto's default: false).
	CleanSession *bool `yaml:"cleansession,omitempty" json:"cleansession,omitempty"`
	// KeepAlive in seconds, 5-65535 (mosquitto's default: 60).
	KeepAlive int `yaml:"keepalive,omitempty" json:"keepalive,omitempty"`
	// Notifications publishes the bridge's state (1/0) to
	// $SYS/broker/connection/CLIENT_ID/state (default true; verify reads it).
	Notifications *bool `yaml:"notifications,omitempty" json:"notifications,omitempty"`
	// TryPrivate tells the remote it is a bridge (default true; set false
	// for brokers that refuse it, such as AWS IoT).
	TryPrivate *bool `yaml:"try_private,omitempty" json:"try_private,omitempty"`
	// OutgoingRetain keeps the retain flag on messages sent out (default
	// true; false for remotes without retained messages).
	OutgoingRetain *bool `yaml:"bridge_outgoing_retain,omitempty" json:"bridge_outgoing_retain,omitempty"`
	// StartType is automatic (default), lazy or once.
	StartType string `yaml:"start_type,omitempty" json:"start_type,omitempty"`
}

// BridgeTopic is one topic rule of a bridge.
type BridgeTopic struct {
	// Pattern is an MQTT topic filter, with the ACL's rules.
	Pattern string `yaml:"pattern" json:"pattern"`
	// Direction: out (to the remote), in (from it) or both.
	Direction string `yaml:"direction" json:"direction"`
	// QoS 0, 1 or 2 (default 0).
	QoS int `yaml:"qos,omitempty" json:"qos,omitempty"`
	// LocalPrefix is put in front of the pattern on this broker.
	LocalPrefix string `yaml:"local_prefix,omitempty" json:"local_prefix,omitempty"`
	// RemotePrefix is put in front of the pattern on the remote broker.
	RemotePrefix string `yaml:"remote_prefix,omitempty" json:"remote_prefix,omitempty"`
}

// BridgeTLS is how the bridge verifies the remote and proves who it is.
type BridgeTLS struct {
	// CAFile holds the PEM certificates that verify the remote broker (for
	// a mosqprov remote: its /etc/mosquitto/certs/ca.crt).
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// SystemCA verifies the remote with the system's CA store (cloud
	// brokers with a public certificate).
	SystemCA bool `yaml:"system_ca,omitempty" json:"system_ca,omitempty"`
	// CertFile and KeyFile are the bridge's client certificate and key (AWS
	// IoT; or, for a mosqprov remote with mutual_tls, what `mosqprov cert
	// client NAME` made there).
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
	// Version is the TLS version: tlsv1.2 (mosquitto's default) or tlsv1.3.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
}

// Shape is b in pkg/bridge's terms with stand-ins for what only apply
// reads (passwords, TLS files, the host's client id), so validation can
// check everything else before any of it is read.
func (b Bridge) Shape() bridge.Bridge {
	out := b.Model()
	out.SystemCA = b.TLS.CAFile != "" || b.TLS.SystemCA
	if b.PasswordEnv != "" || b.PasswordFile != "" {
		out.Password = "stand-in"
	}
	if out.ClientID == "" {
		out.ClientID = bridge.ClientIDFor(b.Name, "", nil)
	}
	return out
}

// Model is b in pkg/bridge's terms, without what apply reads from outside
// the spec (password, TLS files) and with ClientID as written.
func (b Bridge) Model() bridge.Bridge {
	out := bridge.Bridge{
		Name:             b.Name,
		Addresses:        b.Addresses,
		SystemCA:         b.TLS.SystemCA,
		TLSVersion:       b.TLS.Version,
		InsecurePlainTCP: b.InsecurePlainTCP,
		Username:         b.Username,
		Protocol:         b.Protocol,
		ClientID:         b.ClientID,
		CleanSession:     b.CleanSession,
		KeepAlive:        b.KeepAlive,
		Notifications:    b.Notifications,
		TryPrivate:       b.TryPrivate,
		OutgoingRetain:   b.OutgoingRetain,
		StartType:        b.StartType,
		Source:           bridge.SourceSpec,
	}
	for _, t := range b.Topics {
		out.Topics = append(out.Topics, bridge.Topic{Pattern: t.Pattern, Direction: bridge.Direction(t.Direction), QoS: t.QoS, LocalPrefix: t.LocalPrefix, RemotePrefix: t.RemotePrefix})
	}
	return out
}

func (s *Spec) validateBridges() (string, error) {
	names := map[string]int{}
	for i, b := range s.Bridges {
		f := fmt.Sprintf("bridges[%d]", i)
		if err := s.validateBridgeSpec(f, b); err != nil {
			var ie *errs.InputError
			if errors.As(err, &ie) {
				return ie.Field, err
			}
			return f, err
		}
		if j, dup := names[b.Name]; dup {
			return f + ".name", errs.Invalid(f+".name", "%q is already listed as bridges[%d]", b.Name, j)
		}
		names[b.Name] = i
	}
	return "", nil
}

func (s *Spec) validateBridgeSpec(f string, b Bridge) error {
	// 0 leaves mosquitto's default when unset, but a written 0 is a value
	// out of range, not "unset".
	if b.KeepAlive == 0 && s.set[f+".keepalive"] {
		return errs.Invalid(f+".keepalive", "0 is not between 5 and 65535 seconds (mosquitto's minimum is 5)")
	}
	if err := b.Shape().Validate(); err != nil {
		var ie *errs.InputError
		if errors.As(err, &ie) {
			return errs.Invalid(f+"."+ie.Field, "%s", ie.Problem)
		}
		return err
	}
	n := 0
	for _, v := range []string{b.PasswordEnv, b.PasswordFile} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return errs.Invalid(f, "bridge %q: give one of password_env or password_file", b.Name)
	}
	if n == 1 && b.Username == "" {
		return errs.Invalid(f+".username", "a remote password needs a username")
	}
	if b.PasswordEnv != "" && !envName(b.PasswordEnv) {
		return errs.Invalid(f+".password_env", "%q is not an environment variable name", b.PasswordEnv)
	}
	for _, p := range []struct{ field, v string }{
		{"password_file", b.PasswordFile}, {"tls.ca_file", b.TLS.CAFile}, {"tls.cert_file", b.TLS.CertFile}, {"tls.key_file", b.TLS.KeyFile},
	} {
		if p.v != "" {
			if err := validateText(f+"."+p.field, p.v, 4096); err != nil {
				return err
			}
		}
	}
	if b.TLS.CAFile != "" && b.TLS.SystemCA {
		return errs.Invalid(f+".tls", "give one of ca_file or system_ca")
	}
	if (b.TLS.CertFile != "") != (b.TLS.KeyFile != "") {
		return errs.Invalid(f+".tls", "a client certificate needs both cert_file and key_file")
	}
	if b.TLS.CertFile != "" && b.TLS.CAFile == "" && !b.TLS.SystemCA {
		return errs.Invalid(f+".tls", "a client certificate needs TLS: give ca_file or system_ca")
	}
	return nil
}
