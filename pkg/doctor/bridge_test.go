package doctor

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// brokerLog is what mosquitto 2.0.11 wrote at its default log levels for a
// bridge whose remote refused its password, then for one whose remote's
// certificate did not chain (copied from a real run, TestDiagnoseRealBroker
// reproduces it live).
const brokerLog = `1796282362: mosquitto version 2.0.11 running
1796282369: Connecting bridge (step 1) cloud (mqtt.example.com:8883)
1796282369: Connecting bridge (step 2) cloud (mqtt.example.com:8883)
1796282369: Connection Refused: not authorised
1796282369: Client local.cloud.pi closed its connection.
1796282372: Connecting bridge (step 1) hub (hub.home.arpa:8883)
1796282372: Connecting bridge (step 2) hub (hub.home.arpa:8883)
1796282372: OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed
1796282372: Client local.hub.pi disconnected: Protocol error.
1796282373: Connecting bridge (step 1) ok (localhost:1884)
1796282373: Connecting bridge (step 2) ok (localhost:1884)
`

// doctor reads the bridges file and the broker's log (Debian's log_dest
// file) and explains each bridge that does not connect.
func TestBridgeFindings(t *testing.T) {
	in := newInstall(t)
	mk := func(name, addr string) bridge.Bridge {
		return bridge.Bridge{Name: name, Addresses: []string{addr}, Topics: []bridge.Topic{{Pattern: "a/#", Direction: bridge.Out}},
			SystemCA: true, Username: "pi1", Password: "the-remote-secret", ClientID: name + ".pi", Source: bridge.SourceSpec}
	}
	bridges := []bridge.Bridge{mk("cloud", "mqtt.example.com:8883"), mk("hub", "hub.home.arpa:8883"), mk("ok", "localhost:1884")}
	if _, err := bridge.Converge(in.sys, bridges); err != nil {
		t.Fatal(err)
	}
	in.write("/var/log/mosquitto/mosquitto.log", []byte(brokerLog), 0o640, in.uid, in.gid)
	r := in.run(nil)
	cloud := wantFinding(t, r, IDBridgeDown, Error, "refused the bridge's user name, password or client certificate")
	if cloud.Subject != "bridge cloud (mqtt.example.com:8883)" || !strings.Contains(cloud.Fix, "username and password") || len(cloud.Detail) != 2 {
		t.Fatalf("cloud: %+v", cloud)
	}
	var hub *Finding
	for i, f := range r.Findings {
		if f.ID == IDBridgeDown && strings.HasPrefix(f.Subject, "bridge hub ") {
			hub = &r.Findings[i]
		}
		if strings.HasPrefix(f.Subject, "bridge ok ") {
			t.Errorf("a bridge that connects is reported: %+v", f)
		}
		if strings.Contains(f.Problem+f.Fix+strings.Join(f.Detail, ""), "the-remote-secret") {
			t.Fatalf("a finding shows the remote password: %+v", f)
		}
	}
	if hub == nil || !strings.Contains(hub.Problem, "does not chain to the CA") || !strings.Contains(hub.Fix, "tls.ca_file") {
		t.Fatalf("hub: %+v%s", hub, dump(r))
	}

	// With the broker's own word on the states (the status identity): a
	// bridge the log explains gets one finding, not two; one that is down
	// without a word in the log gets its own; the states are a fact.
	r = in.run(func(c *Checker) {
		c.BridgeStates = func(context.Context, []bridge.Bridge) (map[string]string, error) {
			return map[string]string{"cloud": "not connected", "hub": "not connected", "ok": "not connected"}, nil
		}
	})
	down := map[string]int{}
	for _, f := range r.Findings {
		if f.ID == IDBridgeDown {
			down[strings.Fields(f.Subject)[1]]++
			if strings.HasPrefix(f.Subject, "bridge ok ") && (f.Severity != Warning || !strings.Contains(f.Problem, "the broker says the bridge is not connected ($SYS/broker/connection/ok.pi/state is 0)")) {
				t.Errorf("ok: %+v", f)
			}
		}
	}
	if down["cloud"] != 1 || down["hub"] != 1 || down["ok"] != 1 {
		t.Errorf("bridge-down findings per bridge %v, want one each%s", down, dump(r))
	}
	if !slices.Contains(r.Facts, Fact{Name: "bridge states", Value: "cloud not connected, hub not connected, ok not connected (read as the status identity)"}) {
		t.Errorf("no fact of the states: %+v", r.Facts)
	}

	// A bridges file others may read is an error: it holds passwords.
	if _, err := in.sys.WriteFile(bridge.File, mustRead(t, in.sys, bridge.File), system.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	wantFinding(t, in.run(nil), IDBridgeExposed, Error, "readable by every user")
}

func mustRead(t *testing.T, sys system.System, p string) []byte {
	t.Helper()
	data, err := sys.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
