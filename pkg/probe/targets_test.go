package probe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/spec"
)

func TestFromSpec(t *testing.T) {
	s, err := spec.Parse("broker.yaml", []byte(`hostname: pi.home.arpa
names: [pi]
ips: [192.168.1.50]
listeners:
  - {type: mqtt}
  - {type: mqtts, bind: 192.168.1.50, mutual_tls: true}
  - {type: wss, port: 19443, bind: "::"}
`))
	if err != nil {
		t.Fatal(err)
	}
	local := FromSpec(s, "")
	want := []Target{
		{Name: "mqtt:1883", Scheme: MQTT, Host: "127.0.0.1", Port: 1883},
		{Name: "mqtts:8883", Scheme: MQTTS, Host: "192.168.1.50", Port: 8883},
		{Name: "wss:19443", Scheme: WSS, Host: "::1", Port: 19443},
	}
	if diff := cmp.Diff(want, local.Targets); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	if local.ServerName != "pi.home.arpa" || !cmp.Equal(local.Names, []string{"pi.home.arpa", "pi", "192.168.1.50"}) || !local.MutualTLS[1] || len(local.LoopbackOnly) != 0 {
		t.Errorf("%+v", local)
	}

	// From a laptop: every listener is dialled on the host given, except
	// the one bound to loopback, which nobody else can reach by design.
	remote := FromSpec(s, "pi.home.arpa")
	for _, tg := range remote.Targets {
		if tg.Host != "pi.home.arpa" {
			t.Errorf("%+v", tg)
		}
	}
	if !cmp.Equal(remote.LoopbackOnly, map[int]bool{0: true}) {
		t.Errorf("loopback only %v", remote.LoopbackOnly)
	}
	if r := Skipped(remote.Targets[0], "why"); !r.OK || r.Checks[0].Status != Skip {
		t.Errorf("%+v", r)
	}
	if len(FromSpec(s, "localhost").LoopbackOnly) != 0 {
		t.Error("a loopback listener skipped when checking from the broker itself")
	}
}

func TestParseListener(t *testing.T) {
	for in, want := range map[string]struct {
		s    Scheme
		port int
		ok   bool
	}{
		"mqtts": {MQTTS, 8883, true}, "wss:9444": {WSS, 9444, true}, "tcp:1884": {MQTT, 1884, true},
		"ws": {WS, 8080, true}, "http": {"", 0, false}, "mqtt:0": {"", 0, false}, "mqtt:x": {"", 0, false},
	} {
		s, port, err := ParseListener(in)
		if (err == nil) != want.ok || s != want.s || port != want.port {
			t.Errorf("%q: %v %v %v", in, s, port, err)
		}
	}
}

// TestACLTopicAgainstRealBroker: the topic ACLTopic picks from a spec's
// rules is one the real broker, given the same rules, lets the user
// publish and subscribe to; the default test topic is not.
func TestACLTopicAgainstRealBroker(t *testing.T) {
	brokertest.Require(t)
	dir := brokertest.Dir(t)
	pw := filepath.Join(dir, "passwd")
	os.WriteFile(pw, nil, 0o644)
	for _, u := range []string{"carol", "dave"} {
		// Throwaway test credentials: -b puts them in argv, which mosqprov never does.
		if out, err := exec.Command("mosquitto_passwd", "-b", pw, u, "pw-"+u).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	os.Chmod(pw, 0o644)
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("user carol\ntopic read sensors/#\ntopic write cmd/#\ntopic readwrite home/+/#\n\npattern readwrite users/%u/#\n"), 0o644)
	s, err := spec.Parse("broker.yaml", []byte(`hostname: localhost
listeners: [{type: mqtt, bind: 127.0.0.1}]
acl:
  - {user: carol, read: ["sensors/#"], write: ["cmd/#"]}
  - {user: carol, readwrite: ["home/+/#"]}
  - {pattern: true, readwrite: ["users/%u/#"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	port := brokertest.FreePort(t)
	brokertest.Start(t, dir, fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s\nlistener %d 127.0.0.1\n", pw, acl, port), port)
	target := Target{Name: "mqtt", Scheme: MQTT, Host: "127.0.0.1", Port: port}

	for user, want := range map[string]string{"carol": "home/mosqprov/mosqprov-verify", "dave": "users/dave/mosqprov-verify"} {
		topic := ACLTopic(s, user)
		if topic != want {
			t.Errorf("ACLTopic(%s) = %q, want %q", user, topic, want)
		}
		o := Options{User: user, Password: "pw-" + user, Topic: topic, Timeout: 2 * time.Second}
		if r := Probe(context.Background(), target, o); !r.OK {
			t.Errorf("%s on %s: %s", user, topic, r.Reason)
		}
		o.Topic = ""
		if r := Probe(context.Background(), target, o); r.OK {
			t.Errorf("%s: the default topic passed, so the ACL was not in force", user)
		}
	}
}

func TestACLTopic(t *testing.T) {
	for _, tc := range []struct {
		acl, want string
	}{
		{"", ""}, // no ACL: every topic is allowed, the default serves
		{`[{user: u, readwrite: ["home/#"]}]`, "home/mosqprov-verify"},
		{`[{user: u, readwrite: ["#"]}]`, "mosqprov/verify"},
		{`[{user: u, readwrite: ["home/lamp"]}]`, ""}, // no room for the random level
		{`[{user: other, readwrite: ["home/#"]}]`, ""},
		{`[{user: u, read: ["a/#"], write: ["b/#"]}]`, ""}, // never both on one topic
		{`[{user: u, readwrite: ["a/#", "b/#"], deny: ["a/+/#"]}]`, "b/mosqprov-verify"},
		{`[{pattern: true, readwrite: ["c/%c/#", "u/%u/#"]}]`, "u/u/mosqprov-verify"},
	} {
		text := "hostname: localhost\nlisteners: [{type: mqtt}]\n"
		if tc.acl != "" {
			text += "acl: " + tc.acl + "\n"
		}
		s, err := spec.Parse("broker.yaml", []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", tc.acl, err)
		}
		if got := ACLTopic(s, "u"); got != tc.want {
			t.Errorf("%s: ACLTopic = %q, want %q", tc.acl, got, tc.want)
		}
	}
}
