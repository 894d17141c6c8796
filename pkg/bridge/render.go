package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/templates"
)

// Header is the first line of the file: conf.Header, so every file
// mosqprov renders is marked the same way.
const Header = "# Managed by mosqprov: hand edits are overwritten."

// MaxFile caps what Read takes from the bridges file (and the TLS files).
const MaxFile = 1 << 20

// tmpl is parsed on first use: every command pays package init, and only
// the bridge commands render.
var tmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("bridge.conf.tmpl").
		Option("missingkey=error").
		Funcs(template.FuncMap{
			"address": Address,
			"deref":   func(b *bool) bool { return *b },
			"quote": func(s string) string {
				if s == "" {
					return `""`
				}
				return s
			},
			"cafile":   func(b Bridge) string { ca, _, _ := b.Files(); return ca },
			"certfile": func(b Bridge) string { _, c, _ := b.Files(); return c },
			"keyfile":  func(b Bridge) string { _, _, k := b.Files(); return k },
		}).
		ParseFS(templates.FS, "bridge.conf.tmpl"))
})

// Render validates every bridge and renders the file (nil when there are none).
func Render(bridges []Bridge) ([]byte, error) {
	if err := ValidateAll(bridges); err != nil {
		return nil, err
	}
	if len(bridges) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := tmpl().Execute(&buf, bridges); err != nil {
		return nil, fmt.Errorf("render bridges: %w", err)
	}
	return buf.Bytes(), nil
}

// ValidateAll validates each bridge (the error names it) and refuses two
// with one name or one remote client id.
func ValidateAll(bridges []Bridge) error {
	names, ids := map[string]bool{}, map[string]string{}
	for _, b := range bridges {
		if err := b.Validate(); err != nil {
			var ie *errs.InputError
			if errors.As(err, &ie) && b.Name != "" && ValidateName(b.Name) == nil {
				return errs.Invalid("bridge "+b.Name+" "+ie.Field, "%s", ie.Problem)
			}
			return err
		}
		if names[b.Name] {
			return errs.Invalid("name", "bridge %q is listed twice", b.Name)
		}
		names[b.Name] = true
		if other, dup := ids[b.ClientID]; dup {
			return errs.Invalid("client_id", "bridges %s and %s use the same client id %q: the remote broker would drop one for the other", other, b.Name, b.ClientID)
		}
		ids[b.ClientID] = b.Name
	}
	return nil
}

// Read parses the bridges file on sys back into bridges, with their TLS
// files' contents, so the bridge commands can change one and keep the
// others. No file is no bridges; a file mosqprov did not write is refused.
func Read(sys system.System) ([]Bridge, error) {
	data, err := sys.ReadFile(File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", File, err)
	}
	bridges, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", File, err)
	}
	for i := range bridges {
		b := &bridges[i]
		for _, f := range []struct {
			path string
			dst  *[]byte
		}{{b.caFile, &b.CA}, {b.certFile, &b.Cert}, {b.keyFile, &b.Key}} {
			if f.path == "" {
				continue
			}
			data, err := sys.ReadFile(f.path)
			if err != nil {
				return nil, fmt.Errorf("bridge %s: read %s: %w", b.Name, f.path, err)
			}
			if len(data) > MaxFile {
				return nil, fmt.Errorf("bridge %s: %s is larger than %d bytes", b.Name, f.path, MaxFile)
			}
			*f.dst = data
		}
	}
	return bridges, nil
}

// Parse reads back a bridges file mosqprov rendered.
func Parse(data []byte) ([]Bridge, error) {
	if !bytes.HasPrefix(data, []byte(Header+"\n")) {
		return nil, errors.New("not written by mosqprov (the first line is not its header)")
	}
	if len(data) > MaxFile {
		return nil, fmt.Errorf("larger than %d bytes", MaxFile)
	}
	var out []Bridge
	var cur *parsed
	var list []*parsed
	source := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), MaxFile)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# bridge "); ok {
			if _, from, ok := strings.Cut(rest, ", from "); ok {
				source = from
			}
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		name, value, _ := strings.Cut(line, " ")
		bad := func(why string) error { return fmt.Errorf("line %d: %s: %s", n, name, why) }
		if name == "connection" {
			cur = &parsed{Bridge: Bridge{Name: value, Source: source}}
			list = append(list, cur)
			source = ""
			continue
		}
		if cur == nil {
			return nil, bad("before the first connection")
		}
		b := &cur.Bridge
		words := strings.Fields(value)
		boolean := func() (*bool, error) {
			v, err := strconv.ParseBool(value)
			if err != nil {
				return nil, bad("not true or false")
			}
			return &v, nil
		}
		var err error
		switch name {
		case "address":
			for _, w := range words {
				b.Addresses = append(b.Addresses, fromMosquitto(w))
			}
		case "remote_clientid":
			b.ClientID = value
		case "bridge_protocol_version":
			b.Protocol = MQTT311
			if value == "mqttv50" {
				b.Protocol = MQTT5
			}
		case "cleansession":
			b.CleanSession, err = boolean()
		case "notifications":
			b.Notifications, err = boolean()
		case "try_private":
			b.TryPrivate, err = boolean()
		case "bridge_outgoing_retain":
			b.OutgoingRetain, err = boolean()
		case "keepalive_interval":
			b.KeepAlive, err = strconv.Atoi(value)
		case "start_type":
			b.StartType = value
		case "remote_username":
			b.Username = value
		case "remote_password":
			b.Password = value
		case "bridge_cafile":
			cur.caFile = value
		case "bridge_capath":
			b.SystemCA = true
		case "bridge_certfile":
			cur.certFile = value
		case "bridge_keyfile":
			cur.keyFile = value
		case "bridge_tls_version":
			b.TLSVersion = value
		case "topic":
			t, perr := parseTopic(words)
			if perr != nil {
				return nil, bad(perr.Error())
			}
			b.Topics = append(b.Topics, t)
		default:
			return nil, bad("not a setting mosqprov writes")
		}
		if err != nil {
			return nil, bad(err.Error())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, p := range list {
		b := p.Bridge
		b.caFile, b.certFile, b.keyFile = p.caFile, p.certFile, p.keyFile
		if b.Protocol == MQTT311 {
			b.Protocol = ""
		}
		out = append(out, b)
	}
	return out, nil
}

// parsed is a bridge as read, with the paths of its TLS files.
type parsed struct {
	Bridge
	caFile, certFile, keyFile string
}

func parseTopic(words []string) (Topic, error) {
	unquote := func(s string) string {
		if s == `""` {
			return ""
		}
		return s
	}
	if len(words) != 3 && len(words) != 5 {
		return Topic{}, errors.New("expected pattern direction qos [local-prefix remote-prefix]")
	}
	qos, err := strconv.Atoi(words[2])
	if err != nil {
		return Topic{}, errors.New("qos is not a number")
	}
	t := Topic{Pattern: unquote(words[0]), Direction: Direction(words[1]), QoS: qos}
	if len(words) == 5 {
		t.LocalPrefix, t.RemotePrefix = unquote(words[3]), unquote(words[4])
	}
	return t, nil
}

// fromMosquitto turns the broker's host:port back into broker.yaml's form
// (brackets around an IPv6 address).
func fromMosquitto(a string) string {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return a
	}
	host := a[:i]
	if strings.Contains(host, ":") {
		return "[" + host + "]" + a[i:]
	}
	return a
}

// MaskPasswords hides the value of every remote_password line of two
// versions of the file, for plan diffs: a bridge whose password changes
// shows "(new password masked)", so the diff tells a new password from an
// unchanged one and never shows either.
func MaskPasswords(old, new []byte) ([]byte, []byte) {
	oldPW := passwords(old)
	mask := func(data []byte, fresh func(conn, pw string) bool) []byte {
		lines := strings.SplitAfter(string(data), "\n")
		conn := ""
		for i, l := range lines {
			body := strings.TrimRight(l, "\r\n")
			if c, ok := strings.CutPrefix(body, "connection "); ok {
				conn = c
			}
			if v, ok := strings.CutPrefix(body, "remote_password "); ok {
				label := "(password masked)"
				if fresh(conn, v) {
					label = "(new password masked)"
				}
				lines[i] = "remote_password " + label + l[len(body):]
			}
		}
		return []byte(strings.Join(lines, ""))
	}
	return mask(old, func(string, string) bool { return false }),
		mask(new, func(conn, pw string) bool { o, ok := oldPW[conn]; return ok && o != pw })
}

// passwords maps each connection of a bridges file to its remote password.
func passwords(data []byte) map[string]string {
	out := map[string]string{}
	conn := ""
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimRight(l, "\r")
		if c, ok := strings.CutPrefix(l, "connection "); ok {
			conn = c
		}
		if v, ok := strings.CutPrefix(l, "remote_password "); ok {
			out[conn] = v
		}
	}
	return out
}
