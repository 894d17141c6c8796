package systemd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"

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
	host := l.Bind
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, strconv.Itoa(l.Port))
}

// ConfigListeners reads the TCP listeners from the broker's configuration on
// sys: mosquitto.conf and every include_dir it names. This is a minimal
// reader of only the lines that open sockets (listener, port, bind_address,
// include_dir), enough to know what to wait for after a restart; pkg/conf
// owns the full model of the file.
//
// Mosquitto 2.0 rules (mosquitto.conf(5)): `listener PORT [ADDRESS]` opens a
// listener; `listener 0 PATH` is a unix socket (not checked here); the
// deprecated `port`/`bind_address` configure the default listener; with no
// listener at all 2.0 listens on 1883 on loopback only.
func ConfigListeners(sys system.System, conf string) ([]Listener, error) {
	r := &confReader{sys: sys, seen: map[string]bool{}}
	if err := r.file(conf); err != nil {
		return nil, err
	}
	var out []Listener
	if r.defPort != 0 {
		out = append(out, Listener{Port: r.defPort, Bind: r.defBind})
	}
	out = append(out, r.listeners...)
	if len(out) == 0 && !r.socketOnly {
		out = append(out, Listener{Port: 1883, Bind: "127.0.0.1"})
	}
	return out, nil
}

type confReader struct {
	sys        system.System
	seen       map[string]bool
	logFiles   []string
	listeners  []Listener
	defPort    int
	defBind    string
	socketOnly bool
}

func (r *confReader) file(p string) error {
	if r.seen[p] {
		return nil
	}
	r.seen[p] = true
	data, err := r.sys.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read broker configuration: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "listener":
			port, err := strconv.Atoi(f[1])
			if err != nil || port < 0 || port > 65535 {
				return fmt.Errorf("%s:%d: listener port %q is not a port number", p, n, f[1])
			}
			if port == 0 {
				r.socketOnly = true // unix socket: nothing to dial
				continue
			}
			l := Listener{Port: port}
			if len(f) > 2 {
				l.Bind = f[2]
			}
			r.listeners = append(r.listeners, l)
		case "port":
			port, err := strconv.Atoi(f[1])
			if err != nil || port <= 0 || port > 65535 {
				return fmt.Errorf("%s:%d: port %q is not a port number", p, n, f[1])
			}
			r.defPort = port
		case "bind_address":
			r.defBind = f[1]
		case "log_dest":
			if f[1] == "file" && len(f) > 2 {
				r.logFiles = append(r.logFiles, strings.TrimSpace(strings.SplitN(strings.TrimSpace(sc.Text()), "file", 2)[1]))
			}
		case "include_dir":
			dir := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "include_dir"))
			entries, err := r.sys.ReadDir(dir)
			if err != nil {
				return fmt.Errorf("%s:%d: include_dir: %w", p, n, err)
			}
			var names []string
			for _, e := range entries {
				// The broker reads only *.conf there, in byte order.
				if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") {
					names = append(names, e.Name())
				}
			}
			sort.Strings(names)
			for _, name := range names {
				if err := r.file(path.Join(dir, name)); err != nil {
					return err
				}
			}
		}
	}
	return sc.Err()
}

// defaultListeners reads the listeners from the Debian layout on s.Sys.
func (s *Service) defaultListeners() ([]Listener, error) {
	return ConfigListeners(s.Sys, layout.MosquittoConf)
}

// LogFiles lists the files the broker logs to (`log_dest file PATH`).
// Debian's mosquitto.conf logs to /var/log/mosquitto/mosquitto.log, so the
// reason a broker refused to start ("Address already in use") is there,
// not in the journal, which only says the process exited.
func LogFiles(sys system.System, conf string) []string {
	r := &confReader{sys: sys, seen: map[string]bool{}}
	r.file(conf)
	return r.logFiles
}

// LogLines is how many of a log file's last lines a failure shows.
const LogLines = 10

// brokerLog is the last LogLines lines of each file the broker logs to,
// each file introduced by its name.
func (s *Service) brokerLog() []string {
	var out []string
	for _, p := range LogFiles(s.Sys, layout.MosquittoConf) {
		data, err := s.Sys.ReadFile(p)
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
