package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
)

// The rendered addresses are what the real broker takes: an IPv6 address
// written as [::1]:port in broker.yaml, and failover to the second address
// when the first refuses.
func TestAddressesRealBroker(t *testing.T) {
	brokertest.Require(t)
	remote, local, dead := brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)
	dir := brokertest.Dir(t)
	brokertest.Start(t, brokertest.Dir(t), fmt.Sprintf("listener %d\nallow_anonymous true\n", remote), remote)

	b := Bridge{
		Name:      "v6",
		Addresses: []string{fmt.Sprintf("localhost:%d", dead), fmt.Sprintf("[::1]:%d", remote)},
		Topics:    []Topic{{Pattern: "x/#", Direction: Out, QoS: 1}},
		ClientID:  "v6.test",
		Source:    SourceSpec,
	}
	data, err := Render([]Bridge{b})
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, dir, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n%s", local, data), local)

	// Each try of the dead address waits for the restart timeout (5 s at
	// first), so give the failover time.
	topic := b.StateTopic()
	var got []string
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); {
		s, err := brokertest.Client{Port: local}.Subscribe(topic, 1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Wait(); len(got) == 1 && got[0] == topic+" 1" {
			break
		}
	}
	if len(got) != 1 || !strings.HasSuffix(got[0], " 1") {
		t.Fatalf("the bridge never connected through its second address: %q", got)
	}
	ok, err := brokertest.Roundtrip(brokertest.Client{Host: "::1", Port: remote}, brokertest.Client{Port: local}, "x/1", "hello")
	if err != nil || !ok {
		t.Fatalf("no message through the bridge: %v %v", ok, err)
	}
}
