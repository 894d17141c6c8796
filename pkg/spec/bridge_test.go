package spec

import (
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

const goodBridge = `listeners: [{type: mqtt}]
bridges:
  - name: cloud
    addresses: ["mqtt.example.com:8883", "backup.example.com:8883"]
    topics:
      - {pattern: "home/#", direction: out, qos: 1, remote_prefix: pi1/}
      - {pattern: "cmd/#", direction: in}
    tls: {system_ca: true}
    username: pi1
    password_env: CLOUD_PASSWORD
    protocol: "5"
    keepalive: 30
    cleansession: false
    notifications: true
    try_private: false
    bridge_outgoing_retain: false
    start_type: automatic
`

// A bridge's problems are found before anything is read or written, each
// at its place in the file, one line, exit 3.
func TestBadBridges(t *testing.T) {
	s, err := Parse("b.yaml", []byte(goodBridge))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown key", "    keepalive: 30", "    keepalive: 30\n    password: hunter2", "b.yaml:13:5: bridges[0].password: unknown field in bridges[0] (known: addresses, bridge_outgoing_retain, cleansession, client_id, insecure_plain_tcp, keepalive, name, notifications, password_env, password_file, protocol, start_type, tls, topics, try_private, username)"},
		{"bad name", "name: cloud", "name: \"a b\"", `b.yaml:3:11: bridges[0].name: "a b": use letters`},
		{"no port", `"backup.example.com:8883"`, `"backup.example.com"`, `b.yaml:4:42: bridges[0].addresses[1]: "backup.example.com" is not host:port`},
		{"bad direction", "direction: in}", "direction: sideways}", `b.yaml:7:39: bridges[0].topics[1].direction: "sideways" is not in, out or both`},
		{"no direction", `{pattern: "cmd/#", direction: in}`, `{pattern: "cmd/#"}`, `b.yaml:7:9: bridges[0].topics[1].direction: "" is not in, out or both`},
		{"bad pattern", `"cmd/#"`, `"cmd/#/x"`, `b.yaml:7:19: bridges[0].topics[1].pattern: "cmd/#/x": '#' must be a whole level`},
		{"newline in pattern", `"cmd/#"`, `"cmd\nconnection evil"`, `bridges[0].topics[1].pattern: "cmd\nconnection evil" contains a control character`},
		{"wildcard prefix", "remote_prefix: pi1/}", "remote_prefix: pi1/+/}", `bridges[0].topics[0].remote_prefix: "pi1/+/" contains a wildcard`},
		{"qos", "qos: 1", "qos: 3", "b.yaml:6:50: bridges[0].topics[0].qos: 3 is not 0, 1 or 2"},
		{"plain TCP", "    tls: {system_ca: true}\n", "", "bridges[0].tls: bridge cloud would reach another machine over plain TCP"},
		{"both password sources", "password_env: CLOUD_PASSWORD", "password_env: CLOUD_PASSWORD\n    password_file: /run/x", `b.yaml:3:5: bridges[0]: bridge "cloud": give one of password_env or password_file`},
		{"password without user", "    username: pi1\n", "", "bridges[0].password: a remote password needs a username"},
		{"protocol as a number", `protocol: "5"`, "protocol: 5", "b.yaml:11:15: bridges[0].protocol: want a string, got integer \"5\" (quote it)"},
		{"protocol 3", `protocol: "5"`, `protocol: "3"`, `b.yaml:11:15: bridges[0].protocol: "3" is not 3.1.1 or 5`},
		{"keepalive", "keepalive: 30", "keepalive: 1", "b.yaml:12:16: bridges[0].keepalive: 1 is not between 5 and 65535"},
		{"keepalive zero", "keepalive: 30", "keepalive: 0", "b.yaml:12:16: bridges[0].keepalive: 0 is not between 5 and 65535"},
		{"too many topics", "    topics:\n", "    topics:\n" + strings.Repeat("      - {pattern: a, direction: out}\n", 999), "bridges[0].topics: 1001 items; at most 256 are allowed"},
		{"start type", "start_type: automatic", "start_type: manual", `b.yaml:17:17: bridges[0].start_type: "manual" is not one of automatic, lazy, once`},
		{"cert without key", "tls: {system_ca: true}", "tls: {system_ca: true, cert_file: /x.crt}", "bridges[0].tls: a client certificate needs both cert_file and key_file"},
		{"ca file and system", "tls: {system_ca: true}", "tls: {system_ca: true, ca_file: /ca.crt}", "bridges[0].tls: give one of ca_file or system_ca"},
		{"client id blank", "start_type: automatic", "start_type: automatic\n    client_id: \"a b\"", `bridges[0].client_id: "a b" contains a blank`},
		{"dup name", "", "  - name: cloud\n    addresses: [\"localhost:1883\"]\n    topics: [{pattern: a, direction: out}]\n", `b.yaml:18:11: bridges[1].name: "cloud" is already listed as bridges[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := goodBridge
			if tc.from == "" {
				y += tc.to
			} else {
				if !strings.Contains(y, tc.from) {
					t.Fatalf("%q not in the spec", tc.from)
				}
				y = strings.Replace(y, tc.from, tc.to, 1)
			}
			s, err := Parse("b.yaml", []byte(y))
			if err == nil {
				err = s.Validate()
			}
			if err == nil {
				t.Fatalf("no error for:\n%s", y)
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

// The schema accepts a full bridge and rejects what the decoder rejects
// for shape, so an editor flags it too.
func TestSchemaBridges(t *testing.T) {
	bad := []string{
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a, direction: out}], password: x}]",
		"bridges: [{name: a, addresses: [\"h\"], topics: [{pattern: a, direction: out}]}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a, direction: sideways}]}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a}]}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: \"a\\nconnection b\", direction: out}]}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a, direction: out, remote_prefix: \"x/#\"}]}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a, direction: out}], protocol: \"3\"}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a, direction: out}], keepalive: 2}]",
		"bridges: [{name: \"a b\", addresses: [\"h:1\"], topics: [{pattern: a, direction: out}]}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a, direction: out}], username: u, password_env: A, password_file: /f}]",
		"bridges: [{name: a, addresses: [\"h:1\"], topics: [{pattern: a, direction: out}], tls: {ca: x}}]",
	}
	probs := validateAll(t, append([]string{goodBridge}, bad...))
	if probs[0] != "" {
		t.Errorf("schema rejects the good bridge: %s", probs[0])
	}
	for i, p := range probs[1:] {
		if p == "" {
			t.Errorf("schema accepts %s", bad[i])
		}
		s, err := Parse("b.yaml", []byte("listeners: [{type: mqtt}]\n"+bad[i]))
		if err == nil {
			err = s.Validate()
		}
		if err == nil {
			t.Errorf("Go accepts %s", bad[i])
		}
	}
}
