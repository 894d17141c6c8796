package systemd

import (
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Listener is an address the broker must accept TCP connections on.
type Listener struct {
	Port int    `json:"port"`
	Bind string `json:"bind,omitempty"` // as configured; "" is every interface
}

// Addr is where a check on this machine connects: the bind address, or
// loopback when the listener is on every interface.
func (l Listener) Addr() string {
	return net.JoinHostPort(conf.LocalHost(l.Bind), strconv.Itoa(l.Port))
}

// Bound is where the listener listens, as a person reads it: its bind
// address, or "*" when it has none and the broker listens on every
// interface (IPv4 and IPv6), as ss(8) writes it. Addr is where a check
// connects, which is loopback for those: printing that would tell a person
// the broker is reachable from this machine only.
func (l Listener) Bound() string {
	host := l.Bind
	if host == "" {
		host = "*"
	}
	return net.JoinHostPort(host, strconv.Itoa(l.Port))
}

// listeners is what WaitUp and Status dial; without a reader only the
// unit's state is checked.
func (s *Service) listeners(ctx context.Context) ([]Listener, error) {
	if s.Listeners == nil {
		return nil, nil
	}
	return s.Listeners(ctx)
}

// configuredListeners are the listeners the broker opens, read from its
// whole configuration (mosquitto.conf and its include_dir files, through
// pkg/conf): 2.0's default 127.0.0.1:1883 when none is declared.
func (s *Service) configuredListeners(context.Context) ([]Listener, error) {
	b, err := conf.ReadBroker(s.Sys, layout.MosquittoConf)
	if err != nil {
		return nil, err
	}
	var out []Listener
	for _, l := range b.Bound() {
		out = append(out, Listener{Port: l.Port, Bind: l.Bind})
	}
	return out, nil
}

// configuredLog is the last lines of the broker's log_dest files.
func (s *Service) configuredLog() []string {
	b, err := conf.ReadBroker(s.Sys, layout.MosquittoConf)
	if err != nil {
		return nil
	}
	return LogTail(s.Sys, b.LogFiles)
}

// LogLines is how many of a log file's last lines a failure shows.
const LogLines = 10

// LogTail is the last LogLines lines of each of the broker's log files
// (its `log_dest file` targets, read by pkg/conf), each file introduced by
// its name; a missing or empty file shows nothing.
func LogTail(sys system.System, files []string) []string {
	var out []string
	for _, p := range files {
		data, err := sys.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > LogLines {
			lines = lines[len(lines)-LogLines:]
		}
		out = append(out, p+" (last lines):")
		out = append(out, lines...)
	}
	return out
}
