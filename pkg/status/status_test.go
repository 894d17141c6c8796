package status

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FromSys reads the figures the way mosquitto 2.0.11 publishes them (the
// payloads below were copied from a real broker's $SYS).
func TestFromSys(t *testing.T) {
	var r Report
	r.FromSys(Sys{
		"$SYS/broker/version":                       "mosquitto version 2.0.11",
		"$SYS/broker/uptime":                        "754 seconds",
		"$SYS/broker/clients/connected":             "4",
		"$SYS/broker/retained messages/count":       "53",
		"$SYS/broker/subscriptions/count":           "9",
		"$SYS/broker/load/messages/received/1min":   "120.00",
		"$SYS/broker/load/messages/sent/1min":       "240.00",
		"$SYS/broker/load/bytes/received/1min":      "6000.00",
		"$SYS/broker/load/bytes/sent/1min":          "12000.00",
		"$SYS/broker/connection/cloud/state":        "1",
		"$SYS/broker/connection/other-pi/state":     "0",
		"$SYS/broker/connection/cloud/notification": "x",
	})
	want := Report{Version: "2.0.11", UptimeSeconds: 754, ClientsConnected: 4, Retained: 53, Subscriptions: 9,
		MessagesInPerSec: 2, MessagesOutPerS: 4, BytesInPerSec: 100, BytesOutPerSec: 200,
		Bridges: []Bridge{{"cloud", true}, {"other-pi", false}}}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestWarnings(t *testing.T) {
	lines := []string{"1: Warning: a", "2: ok", "3: Error: b", "4: Warning: c", "5: New client"}
	if got := Warnings(lines, 2); !cmp.Equal(got, []string{"3: Error: b", "4: Warning: c"}) {
		t.Errorf("%q", got)
	}
}
