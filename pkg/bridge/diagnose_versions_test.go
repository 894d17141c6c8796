package bridge

import (
	"strings"
	"testing"
)

// mosquitto 2.1.2's log for a bridge whose remote certificate names
// another address (copied from a run of TestDiagnoseRealBroker): the same
// "certificate verify failed" as for a chain that leads elsewhere, with no
// "host name verification failed" line as 2.0 writes.
const log21 = `Connecting bridge (step 1) hub (127.0.0.1:8883)
Connecting bridge (step 2) hub (127.0.0.1:8883)
OpenSSL Error while trying to get the error[0]: error:0A000086:SSL routines::certificate verify failed
Client local.hub.pi [(null):0] disconnected: Success.`

// Which version wrote the log decides what "certificate verify failed"
// means: the log's own start line, else the installed broker's version.
func TestDiagnoseCertificateByVersion(t *testing.T) {
	hub := []Bridge{{Name: "hub", Addresses: []string{"127.0.0.1:8883"}, ClientID: "hub.pi"}}
	for _, c := range []struct {
		what, start, broker string
		want                Cause
	}{
		{"2.1's start line", "mosquitto version 2.1.2 starting\n", "", CauseTLSVerify},
		{"2.1 installed, log rotated", "", "2.1.2-1", CauseTLSVerify},
		{"2.0's start line", "mosquitto version 2.0.21 starting\n", "", CauseTLSChain},
		{"2.0 installed", "", "2.0.11-1.2+deb12u1", CauseTLSChain},
		{"the log's start line wins", "mosquitto version 2.1.2 running\n", "2.0.11", CauseTLSVerify},
		{"nothing known: 2.0's reading", "", "", CauseTLSChain},
	} {
		got := Diagnose(hub, strings.Split(c.start+log21, "\n"), c.broker)
		if len(got) != 1 || got[0].Cause != c.want {
			t.Errorf("%s: %+v, want %s", c.what, got, c.want)
		}
	}
}
