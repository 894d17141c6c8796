package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func TestLoadExample(t *testing.T) {
	s, err := Load(system.NewReal(t.TempDir()), "../../examples/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "raspberrypi.local" || len(s.Users) != 3 || len(s.Listeners) != 3 || s.TLS.CAName != "Home MQTT CA" {
		t.Fatalf("decoded %+v", s)
	}
	if !s.Service.Enabled() || !s.Package.Installed() || s.PruneUsers || s.AllowAnonymous {
		t.Fatalf("flags %+v", s)
	}
}

func TestDefaultsFilled(t *testing.T) {
	s, err := Parse("b.yaml", []byte("hostname: pi.local\nlisteners:\n  - type: mqtt\n  - type: wss\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Listener{{Type: MQTT, Port: 1883, Bind: "127.0.0.1"}, {Type: WSS, Port: 9443}}
	if d := cmp.Diff(want, s.Listeners); d != "" {
		t.Fatal(d)
	}
	if s.TLS != (TLS{KeyType: "rsa-2048", ServerDays: 825, RenewBeforeDays: 30, MinVersion: "tlsv1.2", CAName: "mosqprov CA pi.local"}) {
		t.Fatalf("tls defaults %+v", s.TLS)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Marshal then Parse gives back the same spec: the wizard writes what apply reads.
func TestMarshalRoundTrip(t *testing.T) {
	for _, s := range []*Spec{Default("pi.local"), mustLoad(t, "../../examples/broker.yaml")} {
		data, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse("again.yaml", data)
		if err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if d := cmp.Diff(s, back, cmpopts.IgnoreUnexported(Spec{})); d != "" {
			t.Fatalf("round trip differs:\n%s\n%s", d, data)
		}
	}
}

func TestDefaultValidates(t *testing.T) {
	if err := Default("raspberrypi.local").Validate(); err != nil {
		t.Fatal(err)
	}
}

const hash7 = "$7$101$74G1pCqSt4EPbk0k$l5MijUNV9xjqd00TZnXHrKfdQLEzw0r1/XtNYNjAtCSyFhoAf7c0oIpZunEjhWIbesnOMGnfc7atQzv+bWZ7qA=="

// Every bad spec is one error line with the file, line and column of the
// culprit, and names the field.
func TestBadSpecs(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown top key", "hostname: a\nlistners: []\n", "b.yaml:2:1: listners: unknown field in broker.yaml (known: acl, allow_anonymous, bridges, broker, hostname, ips, listeners, names, package, prune_users, revoked, service, status_reader, tls, users)"},
		{"unknown nested key", "hostname: a\ntls:\n  key_typ: rsa-2048\n", "b.yaml:3:3: tls.key_typ: unknown field in tls"},
		{"unknown key in list item", "hostname: a\nusers:\n  - {name: x, pasword_env: X}\n", "b.yaml:3:15: users[0].pasword_env: unknown field in users[0]"},
		{"port not a number", "hostname: a\nlisteners:\n  - type: mqtt\n    port: high\n", `b.yaml:4:11: listeners[0].port: want an integer, got string "high"`},
		{"bool not a bool", "allow_anonymous: yes\n", `b.yaml:1:18: allow_anonymous: want true or false, got string "yes"`},
		{"list not a list", "names: pi.local\n", `b.yaml:1:8: names: want a list, got string "pi.local"`},
		{"unquoted number as name", "users:\n  - {name: 1234, hash: x}\n", `b.yaml:2:12: users[0].name: want a string, got integer "1234" (quote it)`},
		{"set twice", "hostname: a\nhostname: b\n", "b.yaml:2:1: hostname: set twice"},
		{"syntax", "hostname: a\n  bad: [\n", "b.yaml:2:1: spec: not valid YAML"},
		{"top not a mapping", "- a\n", "b.yaml:1:1: spec: want a mapping"},
		{"bad port", "hostname: a\nlisteners:\n  - {type: mqtts, port: 70000}\n", "b.yaml:3:25: listeners[0].port: 70000 is not a port"},
		{"dup port", "hostname: a\nlisteners:\n  - {type: mqtt, port: 1883}\n  - {type: mqtts, port: 1883}\n", "b.yaml:4:25: listeners[1].port: 1883 is already used by listeners[0]"},
		{"bad type", "listeners:\n  - {type: http}\n", `b.yaml:2:12: listeners[0].type: "http" is not one of mqtt, mqtts, ws, wss`},
		{"only websockets", "hostname: a\nlisteners:\n  - {type: wss}\n", "b.yaml:3:3: listeners: at least one listener must be mqtt or mqtts"},
		{"tls without hostname", "listeners:\n  - {type: mqtts}\n", "hostname: needed for the server certificate"},
		{"bad bind", "listeners:\n  - {type: mqtt, bind: localhost}\n", `b.yaml:2:24: listeners[0].bind: bind address "localhost" is not an IP address`},
		{"mutual on plain", "listeners:\n  - {type: mqtt, mutual_tls: true}\n", "b.yaml:2:30: listeners[0].mutual_tls: mutual TLS needs a TLS listener (mqtts or wss)"},
		{"bad key type", "tls: {key_type: dsa}\nlisteners: [{type: mqtt}]\n", `b.yaml:1:17: tls.key_type: "dsa" is not a key type`},
		{"too long cert", "tls: {server_days: 3650}\nlisteners: [{type: mqtt}]\n", "b.yaml:1:20: tls.server_days: 3650 is out of range (1 to 825 days)"},
		{"renew too late", "tls: {server_days: 30, renew_before_days: 30}\nlisteners: [{type: mqtt}]\n", "b.yaml:1:43: tls.renew_before_days: 30 must be"},
		{"tls 1.1", "tls: {min_version: tlsv1.1}\nlisteners: [{type: mqtt}]\n", "tls.min_version"},
		{"newline in ca name", "tls: {ca_name: \"a\\nlistener 1\"}\nlisteners: [{type: mqtt}]\n", `b.yaml:1:16: tls.ca_name: "a\nlistener 1" contains a control character`},
		{"bad hostname", "hostname: pi_local\nlisteners: [{type: mqtt}]\n", `b.yaml:1:11: hostname: "pi_local" is not a DNS name`},
		{"bad ip", "ips: [192.168.1.500]\nlisteners: [{type: mqtt}]\n", "b.yaml:1:7: ips[0]: \"192.168.1.500\" is not an IP address"},
		{"colon in user", "listeners: [{type: mqtt}]\nusers:\n  - {name: \"a:b\", hash: \"" + hash7 + "\"}\n", "b.yaml:3:12: users[0].name: \"a:b\" contains ':'"},
		{"no password source", "listeners: [{type: mqtt}]\nusers:\n  - {name: a}\n", "b.yaml:3:5: users[0]: user \"a\" needs exactly one of password_env, password_file or hash (has 0)"},
		{"two sources", "listeners: [{type: mqtt}]\nusers:\n  - {name: a, password_env: A, password_file: /x}\n", "(has 2)"},
		{"dup user", "listeners: [{type: mqtt}]\nusers:\n  - {name: a, password_env: A}\n  - {name: a, password_env: B}\n", "b.yaml:4:12: users[1].name: \"a\" is already listed as users[0]"},
		{"crypt hash", "listeners: [{type: mqtt}]\nusers:\n  - {name: a, hash: \"$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.\"}\n", "b.yaml:3:21: users[0].hash: crypt(3) SHA-512"},
		{"bad env name", "listeners: [{type: mqtt}]\nusers:\n  - {name: a, password_env: \"A-B\"}\n", "users[0].password_env: \"A-B\" is not an environment variable name"},
		{"bad topic", "listeners: [{type: mqtt}]\nacl:\n  - {user: a, read: [\"a/#/b\"]}\n", `b.yaml:3:22: acl[0].read[0]: "a/#/b": '#' must be a whole level and the last one`},
		{"newline in topic", "listeners: [{type: mqtt}]\nacl:\n  - {user: a, read: [\"a\\nuser root\"]}\n", `b.yaml:3:22: acl[0].read[0]: "a\nuser root" contains a control character`},
		{"pattern not a whole level", "listeners: [{type: mqtt}]\nacl:\n  - {pattern: true, readwrite: [\"users/x%u/#\"]}\n", `b.yaml:3:33: acl[0].readwrite[0]: "users/x%u/#": %u and %c must be a whole level`},
		{"acl without user", "listeners: [{type: mqtt}]\nacl:\n  - {read: [a]}\n", "b.yaml:3:5: acl[0]: say whom the rule is for with exactly one of user, pattern: true or anonymous: true"},
		{"acl two whoms", "listeners: [{type: mqtt}]\nacl:\n  - {user: a, pattern: true, read: [a]}\n", "b.yaml:3:5: acl[0]: say whom"},
		{"acl anonymous without allow", "listeners: [{type: mqtt}]\nacl:\n  - {anonymous: true, read: [a]}\n", "b.yaml:3:17: acl[0].anonymous: a rule for anonymous clients needs allow_anonymous: true"},
		{"acl no topics", "listeners: [{type: mqtt}]\nacl:\n  - {user: a}\n", "b.yaml:3:5: acl[0]: no topics"},
		{"empty", "\n", "b.yaml:1:1: spec: the file is empty"},
		{"no listeners", "listeners: []\n", "b.yaml:1:12: listeners: at least one listener is needed"},
		{"unknown broker key", "broker:\n  persistance: true\nlisteners: [{type: mqtt}]\n", "b.yaml:2:3: broker.persistance: unknown field in broker (known: autosave_interval, log_dest, log_types, max_inflight_messages, max_packet_size, max_queued_messages, memory_limit, persistence, persistent_client_expiration, sys_interval)"},
		{"broker out of range", "broker:\n  max_queued_messages: -1\nlisteners: [{type: mqtt}]\n", "b.yaml:2:24: broker.max_queued_messages: -1 is out of range (0 to 1000000)"},
		{"broker memory too small", "broker: {memory_limit: 1000}\nlisteners: [{type: mqtt}]\n", "b.yaml:1:24: broker.memory_limit: 1000 is out of range (1048576 to 2147483647)"},
		{"broker not a number", "broker:\n  sys_interval: \"10\"\nlisteners: [{type: mqtt}]\n", `b.yaml:2:17: broker.sys_interval: want an integer, got string "10"`},
		{"broker not a bool", "broker:\n  persistence: on\nlisteners: [{type: mqtt}]\n", `b.yaml:2:16: broker.persistence: want true or false, got string "on"`},
		{"broker bad duration", "broker:\n  persistent_client_expiration: 2 weeks\nlisteners: [{type: mqtt}]\n", `b.yaml:2:33: broker.persistent_client_expiration: "2 weeks" is not a duration like 14d`},
		{"broker newline in duration", "broker:\n  persistent_client_expiration: \"1d\\nlistener 1\"\nlisteners: [{type: mqtt}]\n", `broker.persistent_client_expiration: "1d\nlistener 1" is not a duration`},
		{"broker bad log type", "broker:\n  log_types: [error, verbose]\nlisteners: [{type: mqtt}]\n", `b.yaml:2:22: broker.log_types[1]: "verbose" is not one of error, warning`},
		{"broker log dest twice", "broker:\n  log_dest: [syslog, syslog]\nlisteners: [{type: mqtt}]\n", `b.yaml:2:22: broker.log_dest[1]: "syslog" is listed twice`},
		{"broker empty log dest", "broker:\n  log_dest: []\nlisteners: [{type: mqtt}]\n", `b.yaml:2:13: broker.log_dest: empty list`},
		{"status reader without acl", "listeners: [{type: mqtt}]\nstatus_reader: true\n", "b.yaml:2:16: status_reader: needs acl rules"},
		{"status user taken", "listeners: [{type: mqtt}]\nusers:\n  - {name: mosqprov-status, password_env: A}\n", `b.yaml:3:12: users[0].name: "mosqprov-status" is reserved`},
		{"listener user with a blank", "listeners:\n  - {type: mqtt, users: [\"ali ce\"]}\n", `b.yaml:2:26: listeners[0].users[0]: "ali ce" contains a blank`},
		{"revoked bad serial", "listeners: [{type: mqtts, mutual_tls: true}]\nhostname: pi\nrevoked: [kitchen, \"serial:4a:zz\"]\n", `b.yaml:3:20: revoked[1]: "4a:zz" is not a hexadecimal serial number`},
		{"revoked serial twice", "listeners: [{type: mqtts, mutual_tls: true}]\nhostname: pi\nrevoked: [\"serial:4A:3F\", \"serial:0x4a3f\"]\n", `b.yaml:3:27: revoked[1]: "serial:0x4a3f" is already listed as revoked[0]`},
		{"revoked zero serial", "listeners: [{type: mqtts, mutual_tls: true}]\nhostname: pi\nrevoked: [\"serial:00\"]\n", `revoked[0]: "00": a certificate serial number is positive`},
		{"max_connections zero", "listeners:\n  - {type: mqtt, max_connections: 0}\n", "b.yaml:2:35: listeners[0].max_connections: 0 is out of range (1 to 1000000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("b.yaml", []byte(tc.yaml))
			if err == nil {
				err = s.Validate()
			}
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.yaml)
			}
			if !errs.IsInput(err) {
				t.Errorf("%v is not an input error (exit 3)", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(system.NewReal(t.TempDir()), filepath.Join(t.TempDir(), "none.yaml"))
	if !errs.IsInput(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("got %v", err)
	}
}

func mustLoad(t *testing.T, path string) *Spec {
	t.Helper()
	s, err := Load(system.NewReal(t.TempDir()), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Without a path, Load reads the default spec under the System's root and
// names it by where it really is.
func TestLoadDefaultUnderRoot(t *testing.T) {
	root := t.TempDir()
	sys := system.NewReal(root)
	if _, err := Load(sys, ""); !errs.IsInput(err) || !strings.Contains(err.Error(), filepath.Join(root, "etc/mosqprov/broker.yaml")+" does not exist") {
		t.Fatalf("missing default: %v", err)
	}
	data, _ := Marshal(Default("pi.local"))
	if _, err := sys.EnsureDir("/etc/mosqprov", system.Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.WriteFile("/etc/mosqprov/broker.yaml", data, system.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	s, err := Load(sys, "")
	if err != nil || s.Hostname != "pi.local" || s.File() != filepath.Join(root, "etc/mosqprov/broker.yaml") {
		t.Fatalf("%v %+v", err, s)
	}
}

// Hostile specs fail fast with one line naming the place and the limit:
// an alias bomb, lists no broker needs, a second document, zeros written
// where the default would have been valid.
func TestHostileSpecs(t *testing.T) {
	topics := "[" + strings.Repeat("t,", 999) + "t]"
	// One anchored 1000-topic list referenced by every further rule, as in
	// the 62 KB file that took 43 s and 1.4 GB before the values were capped.
	var bomb strings.Builder
	bomb.WriteString("listeners: [{type: mqtt}]\nacl:\n  - {user: u, read: &t " + topics + "}\n")
	for i := 0; i < 999; i++ {
		bomb.WriteString("  - {user: u, read: *t}\n")
	}
	list := func(n int, item string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"alias bomb", bomb.String(), "values (YAML aliases repeat what they point at); refusing it"},
		{"port zero", "hostname: a\nlisteners:\n  - {type: mqtt, port: 0}\n", "b.yaml:3:24: listeners[0].port: 0 is not a port (1-65535)"},
		{"server days zero", "tls: {server_days: 0}\nlisteners: [{type: mqtt}]\n", "b.yaml:1:20: tls.server_days: 0 is out of range (1 to 825 days)"},
		{"second document", "listeners: [{type: mqtt}]\n---\nhostname: evil\n", "b.yaml:2:1: spec: a second YAML document"},
		{"second empty document", "listeners: [{type: mqtt}]\n---\n", "spec: a second YAML document"},
		{"too many names", "hostname: a\nnames: " + list(100, "b") + "\nlisteners: [{type: mqtt}]\n", "b.yaml:2:8: names: hostname, names and ips give 101 certificate names; at most 100"},
		{"too many ips", "ips: " + list(101, "10.0.0.1") + "\nlisteners: [{type: mqtt}]\n", "b.yaml:1:6: ips: 101 items; at most 100 are allowed"},
		{"too many users", "listeners: [{type: mqtt}]\nusers: " + list(1001, "{name: a, password_env: A}") + "\n", "b.yaml:2:8: users: 1001 items; at most 1000 are allowed"},
		{"too many rules", "listeners: [{type: mqtt}]\nacl: " + list(1001, "{user: a, read: [t]}") + "\n", "b.yaml:2:6: acl: 1001 items; at most 1000 are allowed"},
		{"too many topics in a list", "listeners: [{type: mqtt}]\nacl:\n  - {user: a, read: " + list(1001, "t") + "}\n", "b.yaml:3:21: acl[0].read: 1001 items; at most 1000"},
		{"too many topics in a rule", "listeners: [{type: mqtt}]\nacl:\n  - {user: a, read: " + list(600, "t") + ", write: " + list(600, "t") + "}\n", "b.yaml:3:5: acl[0]: 1200 topics; at most 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("b.yaml", []byte(tc.yaml))
			if err == nil {
				err = s.Validate()
			}
			if err == nil {
				t.Fatalf("no error for:\n%.300s", tc.yaml)
			}
			if !errs.IsInput(err) {
				t.Errorf("%v is not an input error (exit 3)", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

// A written 0 is kept where 0 is valid, not replaced by the default.
func TestZeroKept(t *testing.T) {
	s, err := Parse("b.yaml", []byte("tls: {renew_before_days: 0, server_days: ~}\nlisteners: [{type: mqtt, port: ~}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.TLS.RenewBeforeDays != 0 || s.TLS.ServerDays != 825 || s.Listeners[0].Port != 1883 {
		t.Fatalf("renew_before_days %d, server_days %d, port %d", s.TLS.RenewBeforeDays, s.TLS.ServerDays, s.Listeners[0].Port)
	}
}

// The spec is the caller's input: a folder, /dev/zero or a file over the
// cap is one line and exit 3, read no further than the cap.
func TestLoadHostileFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("hostname: a\n"+strings.Repeat("# padding\n", 30_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{dir, dir + " is a folder, not a file"},
		{"/dev/zero", "spec: /dev/zero is larger than 256 KiB; refusing to read it"},
		{big, big + " is larger than 256 KiB"},
	} {
		_, err := Load(system.NewReal(t.TempDir()), tc.path)
		if !errs.IsInput(err) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Load(%s) = %v, want an input error containing %q", tc.path, err, tc.want)
		}
	}
}
