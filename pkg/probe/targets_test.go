package probe

import (
	"testing"

	"github.com/google/go-cmp/cmp"

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
