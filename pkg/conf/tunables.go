package conf

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// Tunables are the broker-wide settings broker.yaml's `broker:` may set. A
// nil field (or an empty list) is left out of the file, so the broker keeps
// its own default (or Debian's mosquitto.conf's). Every value is a number
// or a word from a fixed list, checked by Validate: nothing a user writes
// reaches the file as free text.
//
// What was checked with Debian's mosquitto 2.0.11 (pkg/conf/tunables_broker_test.go):
//   - Debian's mosquitto.conf sets `persistence true`; `persistence` set again
//     in conf.d is taken (the last one wins), so it is written here.
//   - A second `persistence_location` is refused ("Duplicate
//     persistence_location value"): it is not a tunable.
//   - A second `log_dest file PATH` is refused ("Duplicate "log_dest file"
//     value"), even after `log_dest none`; every other `log_dest` adds a
//     destination, and `log_dest none` drops all the earlier ones (Debian's
//     file included). So LogDest [file, ...] keeps Debian's file and adds the
//     others, and a list without file starts with `log_dest none`.
//   - `log_type` lines replace the default set (error, warning, notice,
//     information) with exactly the types given.
type Tunables struct {
	Persistence *bool `json:"persistence,omitempty"`
	// AutosaveInterval is seconds between saves of the in-memory database
	// (0: only at exit).
	AutosaveInterval    *int `json:"autosave_interval,omitempty"`
	MaxQueuedMessages   *int `json:"max_queued_messages,omitempty"`
	MaxInflightMessages *int `json:"max_inflight_messages,omitempty"`
	// MaxPacketSize is in bytes (whole MQTT packets; a client sending a
	// bigger one is disconnected).
	MaxPacketSize *int `json:"max_packet_size,omitempty"`
	// MemoryLimit is the broker's heap limit in bytes.
	MemoryLimit *int `json:"memory_limit,omitempty"`
	// PersistentClientExpiration is mosquitto's duration: a number and one
	// of h, d, w, m (month), y.
	PersistentClientExpiration string `json:"persistent_client_expiration,omitempty"`
	// SysInterval is seconds between $SYS updates (0: no $SYS at all).
	SysInterval *int     `json:"sys_interval,omitempty"`
	LogTypes    []string `json:"log_types,omitempty"`
	// LogDest are the log destinations: file (Debian's
	// /var/log/mosquitto/mosquitto.log), syslog, stderr (the journal).
	LogDest []string `json:"log_dest,omitempty"`
}

// Range is the accepted span of an integer setting.
type Range struct{ Min, Max int }

// Ranges of the integer tunables (and of a listener's max_connections).
// The limits are what a Pi can use and what the broker takes:
// memory_limit below about a megabyte stops 2.0.11 at startup ("Error: Out
// of memory", checked), and 2^31-1 is the most a 32-bit Pi's ssize_t holds;
// a max_packet_size below 1 KiB refuses ordinary CONNECT packets with TLS
// user names; 268435455 is MQTT's largest remaining length.
var Ranges = map[string]Range{
	"autosave_interval":     {0, 86400},
	"max_queued_messages":   {0, 1000000},
	"max_inflight_messages": {0, 65535},
	"max_packet_size":       {1024, 268435455},
	"memory_limit":          {1 << 20, 1<<31 - 1},
	"sys_interval":          {0, 86400},
	"max_connections":       {1, 1000000},
}

// LogTypes are mosquitto's log_type values ("none" is an empty list's job).
var LogTypes = []string{"error", "warning", "notice", "information", "debug", "subscribe", "unsubscribe", "websockets", "all"}

// LogDests are the destinations broker.yaml offers. stdout is block
// buffered when not a terminal, topic and dlt are not for a Pi's operator.
var LogDests = []string{"file", "syslog", "stderr"}

// Reload and restart, measured with 2.0.11 (tunables_broker_test.go: change
// the value, SIGHUP, look at what the broker does): sys_interval, log_type,
// log_dest, memory_limit, persistence and autosave_interval take effect on
// SIGHUP. max_queued_messages and max_packet_size don't, even for clients
// that connect after the reload (mosquitto.conf(5) says max_queued_messages
// is reloaded: it is not), nor does a listener's first max_connections
// (2.1.2 does: MaxConnectionsReloads). Those and
// the two that can't be observed in a test (max_inflight_messages,
// persistent_client_expiration) need a restart.
var reloadableTunables = []string{"persistence ", "autosave_interval ", "sys_interval ", "log_type ", "log_dest ", "memory_limit "}

var expiration = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[1-9][0-9]{0,5}[hdwmy]$`) })

// ints lists the integer tunables with their names, in file order.
func (t Tunables) ints() []struct {
	name string
	v    *int
} {
	return []struct {
		name string
		v    *int
	}{
		{"autosave_interval", t.AutosaveInterval},
		{"max_queued_messages", t.MaxQueuedMessages},
		{"max_inflight_messages", t.MaxInflightMessages},
		{"max_packet_size", t.MaxPacketSize},
		{"memory_limit", t.MemoryLimit},
		{"sys_interval", t.SysInterval},
	}
}

// CheckRange refuses v outside the named setting's range.
func CheckRange(field, name string, v int) error {
	r := Ranges[name]
	if v < r.Min || v > r.Max {
		return errs.Invalid(field, "%d is out of range (%d to %d)", v, r.Min, r.Max)
	}
	return nil
}

// Validate checks every set value; field names are the setting's own
// (broker.yaml puts them under `broker.`).
func (t Tunables) Validate() error {
	for _, i := range t.ints() {
		if i.v != nil {
			if err := CheckRange(i.name, i.name, *i.v); err != nil {
				return err
			}
		}
	}
	if e := t.PersistentClientExpiration; e != "" && !expiration().MatchString(e) {
		return errs.Invalid("persistent_client_expiration", "%q is not a duration like 14d: a number from 1 and one of h (hours), d (days), w (weeks), m (months), y (years)", printable(e))
	}
	if err := checkList("log_types", t.LogTypes, LogTypes); err != nil {
		return err
	}
	return checkList("log_dest", t.LogDest, LogDests)
}

func checkList(field string, list, allowed []string) error {
	if list != nil && len(list) == 0 {
		return errs.Invalid(field, "empty list: leave it out for the broker's default")
	}
	for i, v := range list {
		if !slices.Contains(allowed, v) {
			return errs.Invalid(fmt.Sprintf("%s[%d]", field, i), "%q is not one of %s", printable(v), strings.Join(allowed, ", "))
		}
		if slices.Index(list, v) != i {
			return errs.Invalid(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", v)
		}
	}
	return nil
}

// Lines are the configuration lines of the set tunables, in a fixed order
// (none when nothing is set). Call Validate first.
func (t Tunables) Lines() []string {
	var out []string
	if t.Persistence != nil {
		out = append(out, "persistence "+strconv.FormatBool(*t.Persistence))
	}
	for _, i := range t.ints() {
		if i.v != nil {
			out = append(out, i.name+" "+strconv.Itoa(*i.v))
		}
	}
	if t.PersistentClientExpiration != "" {
		out = append(out, "persistent_client_expiration "+t.PersistentClientExpiration)
	}
	for _, v := range t.LogTypes {
		out = append(out, "log_type "+v)
	}
	if len(t.LogDest) > 0 {
		if !slices.Contains(t.LogDest, "file") {
			// Drops Debian's `log_dest file`: a second one is refused, so
			// the file can only be kept or dropped from here.
			out = append(out, "log_dest none")
		}
		for _, v := range t.LogDest {
			if v != "file" {
				out = append(out, "log_dest "+v)
			}
		}
	}
	return out
}

// IsZero reports whether no tunable is set.
func (t Tunables) IsZero() bool { return len(t.Lines()) == 0 && len(t.LogDest) == 0 }
