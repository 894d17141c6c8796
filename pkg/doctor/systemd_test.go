package doctor

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/nspawn"
)

// TestDoctorInRealSystemd runs the real mosqprov binary inside a booted
// Debian bookworm (systemd as PID 1, the real mosquitto package from apt):
// a healthy broker gives no service finding; two configuration files that
// declare the same port make the real restart fail, and doctor says so with
// the clash and the stopped service.
func TestDoctorInRealSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container; not with -short")
	}
	nspawn.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	image, err := nspawn.Image(ctx, nspawn.DefaultCacheDir, nspawn.DefaultRecipe(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	c := nspawn.Boot(t, image)
	if out, err := c.Exec(ctx, "apt-get", "install", "-y", "-q", "mosquitto"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	bin := c.Path("/usr/local/bin/mosqprov")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/mosqprov")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
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

	r, out := doctor()
	if fact(r, "service") != "active (running), enabled" || !strings.HasPrefix(fact(r, "mosquitto"), "2.0.") {
		t.Fatalf("facts of a fresh install: %s", out)
	}
	for _, id := range []string{IDServiceInactive, IDServiceDisabled, IDServiceUnchecked, IDPackageMissing, IDListenerClash} {
		if _, found := find(r, id); found {
			t.Fatalf("%s on a healthy broker: %s", id, out)
		}
	}

	// Debian's own configuration has no listener: 2.0 then runs in "local
	// only mode", on loopback, and lets anonymous clients in. verify, with a
	// real client, says so; told that anonymous access is meant, it passes.
	if out, err := c.Exec(ctx, "mosqprov", "verify", "--listener", "mqtt:1883"); err == nil || !strings.Contains(out, "FAIL mqtt:1883 mqtt://127.0.0.1:1883  anonymous: anonymous clients are accepted") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if out, err := c.Exec(ctx, "mosqprov", "verify", "--listener", "mqtt:1883", "--allow-anonymous"); err != nil || !strings.Contains(out, "ok   mqtt:1883 mqtt://127.0.0.1:1883  anonymous allowed") {
		t.Fatalf("verify --allow-anonymous: %v\n%s", err, out)
	}

	for _, name := range []string{"a.conf", "b.conf"} {
		if err := os.WriteFile(c.Path(filepath.Join("/etc/mosquitto/conf.d", name)), []byte("listener 1884\nallow_anonymous true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := c.Exec(ctx, "systemctl", "restart", "mosquitto"); err == nil {
		t.Fatalf("the broker restarted with the same port twice: %s", out)
	}
	r, out = doctor()
	wantFinding(t, r, IDListenerClash, Error, "port 1884 is declared again here; it is already at /etc/mosquitto/conf.d/a.conf:1")
	f := wantFinding(t, r, IDServiceInactive, Error, "the broker is not running (")
	if len(f.Detail) == 0 || !strings.Contains(f.Problem, "last journal error: ") || !strings.Contains(f.Problem, "Address already in use") {
		t.Fatalf("no journal evidence: %s", out)
	}
	t.Logf("%s: %s\n%s", f.ID, f.Problem, strings.Join(f.Detail, "\n"))
}

// TestSetupToHealthyInRealSystemd is the whole path on a real system: a
// broker.yaml applied (issue 6's engine), then verify as a client and
// doctor from the inside both find nothing wrong.
func TestApplyVerifyDoctorInRealSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container; not with -short")
	}
	nspawn.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	image, err := nspawn.Image(ctx, nspawn.DefaultCacheDir, nspawn.DefaultRecipe(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	c := nspawn.Boot(t, image)
	if out, err := c.Exec(ctx, "apt-get", "install", "-y", "-q", "mosquitto"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", c.Path("/usr/local/bin/mosqprov"), "../../cmd/mosqprov")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
	if err != nil || strings.Count(out, "round trip ok") != 3 {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	t.Logf("verify:\n%s", out)
	out, _ = c.Exec(ctx, "mosqprov", "doctor", "-o", "json")
	var rep struct {
		Result Report `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range rep.Result.Findings {
		// The container shares the host's network: the host's addresses
		// are not in the certificate, and doctor rightly says so.
		if f.Severity == Error || (f.Severity == Warning && f.ID != IDCertAddress) {
			t.Errorf("after apply: %s %s %s: %s", f.Severity, f.ID, f.Subject, f.Problem)
		}
	}
}
