package spec

import (
	"errors"
	"strconv"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
)

// Broker is broker.yaml's `broker:`: an allow-list of the broker's own
// settings that matter on a Pi. Each one left out is not written, so the
// broker keeps its default; pkg/conf (tunables.go) says where each lands
// and what was checked with the real broker.
type Broker struct {
	// Persistence saves retained messages, subscriptions and queued messages
	// to /var/lib/mosquitto (Debian's default: true).
	Persistence *bool `yaml:"persistence,omitempty" json:"persistence,omitempty"`
	// AutosaveInterval is seconds between saves, 0..86400 (default 1800;
	// 0 saves only at exit). Fewer saves spare an SD card.
	AutosaveInterval *int `yaml:"autosave_interval,omitempty" json:"autosave_interval,omitempty"`
	// MaxQueuedMessages per client, 0..1000000 (default 1000; 0 no limit).
	MaxQueuedMessages *int `yaml:"max_queued_messages,omitempty" json:"max_queued_messages,omitempty"`
	// MaxInflightMessages per client, 0..65535 (default 20; 0 no limit).
	MaxInflightMessages *int `yaml:"max_inflight_messages,omitempty" json:"max_inflight_messages,omitempty"`
	// MaxPacketSize in bytes, 1024..268435455 (default no limit); a client
	// sending a bigger packet is disconnected.
	MaxPacketSize *int `yaml:"max_packet_size,omitempty" json:"max_packet_size,omitempty"`
	// MemoryLimit is the broker's heap limit in bytes, 1048576..2147483647
	// (default no limit).
	MemoryLimit *int `yaml:"memory_limit,omitempty" json:"memory_limit,omitempty"`
	// PersistentClientExpiration removes persistent sessions not seen for
	// this long: a number and h, d, w, m (months) or y, e.g. 14d (default never).
	PersistentClientExpiration string `yaml:"persistent_client_expiration,omitempty" json:"persistent_client_expiration,omitempty"`
	// SysInterval is seconds between $SYS updates, 0..86400 (default 10;
	// 0 turns $SYS off, and `mosqprov status` with it).
	SysInterval *int `yaml:"sys_interval,omitempty" json:"sys_interval,omitempty"`
	// LogTypes replace the default error, warning, notice, information.
	LogTypes []string `yaml:"log_types,omitempty" json:"log_types,omitempty"`
	// LogDest: file (Debian's /var/log/mosquitto/mosquitto.log), syslog,
	// stderr (the journal). Default: Debian's file.
	LogDest []string `yaml:"log_dest,omitempty" json:"log_dest,omitempty"`
}

// IsZero reports whether no setting is given (yaml and json leave it out).
func (b Broker) IsZero() bool { return b.Tunables().IsZero() }

// Tunables is b in pkg/conf's terms.
func (b Broker) Tunables() conf.Tunables {
	return conf.Tunables{
		Persistence:                b.Persistence,
		AutosaveInterval:           b.AutosaveInterval,
		MaxQueuedMessages:          b.MaxQueuedMessages,
		MaxInflightMessages:        b.MaxInflightMessages,
		MaxPacketSize:              b.MaxPacketSize,
		MemoryLimit:                b.MemoryLimit,
		PersistentClientExpiration: b.PersistentClientExpiration,
		SysInterval:                b.SysInterval,
		LogTypes:                   b.LogTypes,
		LogDest:                    b.LogDest,
	}
}

// validateBroker checks `broker:` with pkg/conf's rules, pointing at the
// value in the file.
func (s *Spec) validateBroker() (string, error) {
	err := s.Broker.Tunables().Validate()
	var ie *errs.InputError
	if errors.As(err, &ie) {
		f := "broker." + ie.Field
		return f, errs.Invalid(f, "%s", ie.Problem)
	}
	return "", err
}

// StatusUser is the name the status identity takes (pkg/status.User; a
// constant here so pkg/spec needs no MQTT client).
const StatusUser = "mosqprov-status"

// validateStatusReader refuses status_reader without ACL rules (the
// identity would not be confined) and a user of broker.yaml taking its name.
func (s *Spec) validateStatusReader() (string, error) {
	for i, u := range s.Users {
		if u.Name == StatusUser {
			f := "users[" + strconv.Itoa(i) + "].name"
			return f, errs.Invalid(f, "%q is reserved for mosqprov status's own identity", u.Name)
		}
	}
	if s.StatusReader && s.PerListenerAuth() {
		// Each listener then has its own password file, which the status
		// identity is not in (yet).
		return "status_reader", errs.Invalid("status_reader", "does not work with listeners[].users (per-listener authentication) yet")
	}
	if s.StatusReader && len(s.ACL) == 0 {
		return "status_reader", errs.Invalid("status_reader", "needs acl rules: without an ACL file every user may publish and read every topic, the status identity included")
	}
	return "", nil
}
