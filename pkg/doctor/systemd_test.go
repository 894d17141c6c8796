package doctor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/nspawn"
)

// TestInRealSystemd runs the real mosqprov binary inside a booted Debian,
// bookworm and trixie (systemd as PID 1, the real mosquitto package from
// apt), in one container per suite to keep CI short. Something listens on
// the host's 127.0.0.1:1883 all along (a dummy, or whatever already did):
// the container has its own network, so verify reaches the container's
// broker, never the host's (a CI run once failed here when the container
// shared the host's network and another broker held the host's 1883):
//  1. Debian's own broker: doctor sees the service; verify, as a client,
//     sees 2.0's "local only mode" letting anonymous clients in;
//  2. a broker.yaml applied: verify (as a user, on every listener) and
//     doctor (from the inside) find nothing wrong;
//  3. two configuration files declaring one port: the real restart fails,
//     and doctor reports the clash and the failing service with the
//     journal's own error.
func TestInRealSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container; not with -short")
	}
	nspawn.Require(t)
	for _, suite := range nspawn.Suites {
		t.Run(suite, func(t *testing.T) { testInRealSystemd(t, suite) })
	}
}

func testInRealSystemd(t *testing.T, suite string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := nspawn.BootWithMosqprov(ctx, t, suite)
	nspawn.HoldHostPort(t, 1883)
	if out, err := c.Exec(ctx, "apt-get", "install", "-y", "-q", "mosquitto"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	doctor := func() (Report, string) {
		t.Helper()
		out, _ := c.Exec(ctx, "mosqprov", "doctor", "-o", "json")
		var rep struct {
			Result Report `json:"result"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return rep.Result, out
	}
	fact := func(r Report, name string) string {
		for _, f := range r.Facts {
			if f.Name == name {
				return f.Value
			}
		}
		return ""
	}

	// 1. Debian's broker as installed.
	r, out := doctor()
	if fact(r, "service") != "active (running), enabled" || !strings.HasPrefix(fact(r, "mosquitto"), "2.0.") {
		t.Fatalf("facts of a fresh install: %s", out)
	}
	for _, id := range []string{IDServiceInactive, IDServiceDisabled, IDServiceUnchecked, IDPackageMissing, IDListenerClash} {
		if _, found := find(r, id); found {
			t.Fatalf("%s on a healthy broker: %s", id, out)
		}
	}
	if out, err := c.Exec(ctx, "mosqprov", "verify", "--listener", "mqtt:1883"); err == nil || !strings.Contains(out, "FAIL mqtt:1883 mqtt://127.0.0.1:1883  anonymous: anonymous clients are accepted") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if out, err := c.Exec(ctx, "mosqprov", "verify", "--listener", "mqtt:1883", "--allow-anonymous"); err != nil || !strings.Contains(out, "ok   mqtt:1883 mqtt://127.0.0.1:1883  anonymous allowed") {
		t.Fatalf("verify --allow-anonymous: %v\n%s", err, out)
	}

	// 2. A broker.yaml applied.
	os.MkdirAll(c.Path("/etc/mosqprov"), 0o755)
	os.WriteFile(c.Path("/etc/mosqprov/broker.yaml"), []byte(`hostname: pi.test
ips: [127.0.0.1]
tls: {key_type: ecdsa-p256}
listeners:
  - {type: mqtt, bind: 127.0.0.1}
  - {type: mqtts}
  - {type: wss}
users:
  - {name: alice, password_env: ALICE_PASSWORD}
acl:
  - {user: alice, readwrite: ["mosqprov/verify/#"]}
`), 0o600)
	// Throwaway test credentials, passed through env(1) inside the container.
	const pw = "alice-in-a-container"
	if out, err := c.Exec(ctx, "env", "ALICE_PASSWORD="+pw, "mosqprov", "apply", "--yes"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	out, err := c.Exec(ctx, "env", "MOSQPROV_PASSWORD="+pw, "mosqprov", "verify", "--user", "alice")
	if err != nil || strings.Count(out, "round trip ok") != 3 || strings.Count(out, "2 names ok") != 2 {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	r, _ = doctor()
	for _, f := range r.Findings {
		// The container's addresses may not all be in the certificate
		// (ips: [127.0.0.1] only), and doctor rightly says so.
		if f.Severity == Error || (f.Severity == Warning && f.ID != IDCertAddress) {
			t.Errorf("after apply: %s %s %s: %s", f.Severity, f.ID, f.Subject, f.Problem)
		}
	}

	// 3. A port declared twice.
	for _, name := range []string{"a.conf", "b.conf"} {
		if err := os.WriteFile(c.Path(filepath.Join("/etc/mosquitto/conf.d", name)), []byte("listener 1884 127.0.0.1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := c.Exec(ctx, "systemctl", "restart", "mosquitto"); err == nil {
		t.Fatalf("the broker restarted with the same port twice: %s", out)
	}
	// Restart=on-failure tries again a few times before systemd gives up:
	// doctor is asked about the state the broker settles in, not a retry
	// caught half-way (a loaded machine catches "start-pre").
	for deadline := time.Now().Add(60 * time.Second); ; {
		state, _ := c.Exec(ctx, "systemctl", "is-active", "mosquitto")
		if strings.TrimSpace(state) == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, out = doctor()
	wantFinding(t, r, IDListenerClash, Error, "port 1884 is declared again here; it is already at /etc/mosquitto/conf.d/a.conf:1")
	f := wantFinding(t, r, IDServiceInactive, Error, "the broker is not running (")
	if len(f.Detail) == 0 || !strings.Contains(f.Problem, "last journal error: ") || !strings.Contains(f.Problem, "Address already in use") {
		t.Fatalf("no journal evidence: %s", out)
	}
	t.Logf("%s: %s\n%s", f.ID, f.Problem, strings.Join(f.Detail, "\n"))
}
