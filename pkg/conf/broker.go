package conf

// Reading the broker's whole configuration, as the broker does: its main
// file, then every include_dir's *.conf in the broker's order, each line
// split the broker's way. (dropin.go reads back mosqprov's own file.)

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// directive is one configuration line, split the way the broker splits it:
// a line whose first character is '#' is a comment, words are separated by
// blanks.
type directive struct {
	line int
	name string
	args []string
}

func directives(data []byte) []directive {
	var out []directive
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		if strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
		if len(f) == 0 {
			continue
		}
		out = append(out, directive{line: n, name: f[0], args: f[1:]})
	}
	return out
}

// Declared is a listener found in the broker's configuration files.
type Declared struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Port int    `json:"port"`
	// Bind is empty for every interface.
	Bind       string `json:"bind,omitempty"`
	WebSockets bool   `json:"websockets,omitempty"`
	// TLS is set when the listener has a certfile (or a PSK hint): it
	// speaks TLS. Read by doctor to find plain listeners.
	TLS bool `json:"tls,omitempty"`
}

// Setting is a global setting found in the broker's configuration files.
type Setting struct {
	File  string `json:"file"`
	Line  int    `json:"line"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Broker is what the broker reads: its main file and the include_dir files,
// in the order it reads them. It is the one reader of the broker's own
// configuration: conf check, doctor, and (wired in by pkg/cli) the service
// commands, which wait for its listeners and show its log files.
type Broker struct {
	Files       []string
	IncludeDirs []string
	Listeners   []Declared
	// UnixSockets are the `listener 0 PATH` sockets: no TCP port, but their
	// presence stops 2.0 from opening its default listener.
	UnixSockets []string
	// Settings are the global settings a clash can come from: password_file,
	// acl_file, allow_anonymous, per_listener_settings; and where the
	// persistence database is (persistence, persistence_location,
	// persistence_file), which doctor checks.
	Settings []Setting
	// LogFiles are the `log_dest file PATH` targets. Debian's mosquitto.conf
	// logs there, so the reason a broker refused to start ("Address already
	// in use") is in that file, not in the journal.
	LogFiles []string
}

// DefaultListener is where 2.0 listens when its configuration declares no
// listener at all: port 1883 on loopback only ("Starting in local only
// mode", checked with 2.0.11, which opens 127.0.0.1:1883 and [::1]:1883).
var DefaultListener = Declared{Port: 1883, Bind: LoopbackBind}

// Bound lists the TCP listeners the broker opens: the declared ones, or
// DefaultListener when nothing (not even a unix socket) is declared.
func (b *Broker) Bound() []Declared {
	if len(b.Listeners) == 0 && len(b.UnixSockets) == 0 {
		return []Declared{DefaultListener}
	}
	return b.Listeners
}

var watched = map[string]bool{"password_file": true, "acl_file": true, "allow_anonymous": true, "per_listener_settings": true,
	"persistence": true, "persistence_location": true, "persistence_file": true}

// ReadBroker reads mainConf and, as the broker does, every *.conf of each
// include_dir it names (include_dir is honoured in the main file only).
// Unreadable include files are skipped: the broker would fail on them, and
// `conf check` reports what it can read.
func ReadBroker(sys system.System, mainConf string) (*Broker, error) {
	data, err := sys.ReadFile(mainConf)
	if err != nil {
		return nil, fmt.Errorf("read broker configuration %s: %w", mainConf, err)
	}
	b := &Broker{}
	b.add(mainConf, data)
	for _, d := range directives(data) {
		if d.name != "include_dir" || len(d.args) == 0 {
			continue
		}
		dir := strings.Join(d.args, " ")
		b.IncludeDirs = append(b.IncludeDirs, dir)
		entries, err := sys.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read include_dir %s: %w", dir, err)
		}
		var names []string
		for _, e := range entries {
			// The broker takes names ending in .conf and longer than that.
			if !e.IsDir() && len(e.Name()) > len(".conf") && strings.HasSuffix(e.Name(), ".conf") {
				names = append(names, e.Name())
			}
		}
		sortIncludes(names)
		for _, n := range names {
			p := path.Join(dir, n)
			if data, err := sys.ReadFile(p); err == nil {
				b.add(p, data)
			}
		}
	}
	return b, nil
}

// sortIncludes orders names as 2.0's conf_includedir.c (scmp_p) does: byte
// by byte, case-insensitively (by toupper) first, then an upper-case letter
// before the same letter in lower case. Non-ASCII bytes compare unsigned
// here; the broker compares C chars, which are signed on x86 and unsigned
// on ARM, so their order differs between a PC and a Raspberry Pi anyway.
func sortIncludes(names []string) {
	sort.Slice(names, func(i, j int) bool { return includeLess(names[i], names[j]) })
}

func includeLess(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if x, y := upper(a[i]), upper(b[i]); x != y {
			return x < y
		}
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func (b *Broker) add(file string, data []byte) {
	b.Files = append(b.Files, file)
	// Indexes into b.Listeners (appends move the slice): the listener the
	// following lines configure, and the deprecated default listener.
	cur, deflt := -1, -1
	bindAddress := ""
	for _, d := range directives(data) {
		switch {
		case d.name == "listener" && len(d.args) >= 1:
			port, err := strconv.Atoi(d.args[0])
			if err != nil || port == 0 {
				// port 0 is a unix socket: no TCP port to clash on.
				if err == nil && len(d.args) >= 2 {
					b.UnixSockets = append(b.UnixSockets, strings.Join(d.args[1:], " "))
				}
				cur = -1
				continue
			}
			l := Declared{File: file, Line: d.line, Port: port}
			if len(d.args) >= 2 {
				l.Bind = d.args[1]
			}
			b.Listeners = append(b.Listeners, l)
			cur = len(b.Listeners) - 1
		case d.name == "port" && len(d.args) == 1:
			port, err := strconv.Atoi(d.args[0])
			if err != nil {
				continue
			}
			b.Listeners = append(b.Listeners, Declared{File: file, Line: d.line, Port: port, Bind: bindAddress})
			deflt = len(b.Listeners) - 1
		case d.name == "bind_address" && len(d.args) == 1:
			bindAddress = d.args[0]
			if deflt >= 0 {
				b.Listeners[deflt].Bind = bindAddress
			}
		case d.name == "protocol" && len(d.args) == 1:
			target := cur
			if target < 0 {
				target = deflt
			}
			if target >= 0 {
				b.Listeners[target].WebSockets = d.args[0] == "websockets"
			}
		case (d.name == "certfile" || d.name == "psk_hint") && len(d.args) >= 1:
			target := cur
			if target < 0 {
				target = deflt
			}
			if target >= 0 {
				b.Listeners[target].TLS = true
			}
		case d.name == "log_dest" && len(d.args) >= 2 && d.args[0] == "file":
			b.LogFiles = append(b.LogFiles, strings.Join(d.args[1:], " "))
		case watched[d.name]:
			b.Settings = append(b.Settings, Setting{File: file, Line: d.line, Name: d.name, Value: strings.Join(d.args, " ")})
		}
	}
}
