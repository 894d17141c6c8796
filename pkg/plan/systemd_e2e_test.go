package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/internal/nspawn"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// The whole apply on a real Debian with systemd as PID 1 and a real apt
// (internal/nspawn): the package is installed, the service enabled and
// started, clients log in; a second apply restarts nothing; a password
// change is one reload; a listener the broker can't open is rolled back.
func TestApplyInRealSystemd(t *testing.T) {
	nspawn.Require(t)
	brokertest.Require(t)
	for _, suite := range nspawn.Suites {
		t.Run(suite, func(t *testing.T) { testApplyInRealSystemd(t, suite) })
	}
}

func testApplyInRealSystemd(t *testing.T, suite string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// The container has its own network: the standard ports, whatever
	// listens on the host's (a dummy at least, for the test's length).
	mqttPort, tlsPort := 1883, 8883
	c := nspawn.BootWithMosqprov(ctx, t, suite)
	nspawn.HoldHostPort(t, mqttPort)
	nspawn.HoldHostPort(t, tlsPort)
	hash := "$7$101$74G1pCqSt4EPbk0k$l5MijUNV9xjqd00TZnXHrKfdQLEzw0r1/XtNYNjAtCSyFhoAf7c0oIpZunEjhWIbesnOMGnfc7atQzv+bWZ7qA==" // android-example-password
	writeSpec := func(extra, userHash string) {
		t.Helper()
		spec := fmt.Sprintf(`hostname: pi.home.arpa
ips: [127.0.0.1]
listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
  - {type: mqtts, port: %d}
%susers:
  - {name: blinds, hash: "%s"}
acl:
  - {user: blinds, readwrite: ["home/#"]}
`, mqttPort, tlsPort, extra, userHash)
		os.MkdirAll(c.Path("/etc/mosqprov"), 0o755)
		if err := os.WriteFile(c.Path(layout.Spec), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type report struct {
		Changed bool `json:"changed"`
		Changes []struct {
			What   string `json:"what"`
			Action string `json:"action"`
			Detail string `json:"detail"`
		} `json:"changes"`
		Error string `json:"error"`
	}
	apply := func(wantCode int) report {
		t.Helper()
		out, err := c.Exec(ctx, "mosqprov", "apply", "--yes", "-o", "json")
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var r report
		if jerr := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); jerr != nil || code != wantCode {
			t.Fatalf("apply: exit %d (want %d), %v\n%s", code, wantCode, jerr, out)
		}
		return r
	}
	did := func(r report, what, action string) bool {
		for _, ch := range r.Changes {
			if strings.HasPrefix(ch.What, what) && ch.Action == action {
				return true
			}
		}
		return false
	}
	mainPID := func() string {
		out, err := c.Exec(ctx, "systemctl", "show", "-p", "MainPID", "--value", "mosquitto")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	client := func(pw string) brokertest.Client {
		return brokertest.Client{Port: tlsPort, User: "blinds", Password: pw, Extra: []string{"--cafile", c.Path(layout.BrokerCACert)}, NetNS: c.NetNS()}
	}

	// First apply on a bare Debian: install, CA, certificate, users, ACL,
	// configuration, service.
	writeSpec("", hash)
	// The plan counts exactly the lines it shows, the broker's restart
	// included (the package's install starts it on Debian's configuration),
	// and the apply then does exactly that.
	planOut, err := c.Exec(ctx, "mosqprov", "plan")
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, planOut)
	}
	var shown Summary
	for _, line := range strings.Split(planOut, "\n") {
		switch {
		case strings.HasPrefix(line, "+ "):
			shown.Create++
		case strings.HasPrefix(line, "~ "):
			shown.Change++
		case strings.HasPrefix(line, "- "):
			shown.Remove++
		}
	}
	if !strings.Contains(planOut, "\nPlan: "+shown.String()+".\n") || !strings.Contains(planOut, "~ service mosquitto: would restart") {
		t.Fatalf("the plan shows %s:\n%s", shown, planOut)
	}
	r := apply(0)
	var applied Summary
	for _, ch := range r.Changes {
		switch ch.Action {
		case "noop":
		case "create":
			applied.Create++
		case "delete":
			applied.Remove++
		default:
			applied.Change++
		}
	}
	if applied != shown {
		t.Errorf("apply did %s; its plan showed %s:\n%+v", applied, shown, r.Changes)
	}
	// The restart says where the broker listens: mqtts on every interface.
	restarted := r.Changes[len(r.Changes)-1]
	if want := fmt.Sprintf("active, accepting on 127.0.0.1:%d *:%d (* is every interface)", mqttPort, tlsPort); restarted.Action != "restart" || restarted.Detail != want {
		t.Errorf("the restart says %+v, want %q", restarted, want)
	}
	if !r.Changed || !did(r, "package mosquitto", "create") || !did(r, "broker configuration", "create") {
		t.Fatalf("first apply: %+v", r)
	}
	for _, q := range [][]string{{"is-active", "mosquitto"}, {"is-enabled", "mosquitto"}} {
		if out, err := c.Exec(ctx, "systemctl", q...); err != nil {
			t.Fatalf("systemctl %v: %s %v", q, out, err)
		}
	}
	if err := client("android-example-password").Publish("home/blinds/x", "1"); err != nil {
		t.Fatalf("TLS login after the first apply: %v", err)
	}

	// Converged: nothing changes, the broker is not restarted.
	pid := mainPID()
	if r := apply(0); r.Changed {
		t.Fatalf("second apply changed: %+v", r)
	}
	if mainPID() != pid {
		t.Fatal("second apply restarted the broker")
	}

	// A new password: one reload (SIGHUP), same process, the new password works.
	out, err := c.Exec(ctx, "sh", "-c", "printf 'new-password\\n' | mosqprov user hash --password-stdin")
	if err != nil {
		t.Fatalf("user hash: %v\n%s", err, out)
	}
	newHash := strings.TrimSpace(out)
	writeSpec("", newHash)
	r = apply(0)
	if !did(r, "service mosquitto", "reload") || did(r, "service mosquitto", "restart") || mainPID() != pid {
		t.Fatalf("password change: %+v (pid %s -> %s)", r, pid, mainPID())
	}
	if err := client("new-password").Publish("home/blinds/x", "2"); err != nil {
		t.Fatalf("new password after reload: %v", err)
	}

	// A listener on a port something else holds: the restart fails, the
	// previous configuration is restored and the broker is back up on it.
	busy, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	before, _ := os.ReadFile(c.Path(layout.DropIn))
	writeSpec(fmt.Sprintf("  - {type: mqtt, port: %d, bind: 127.0.0.1}\n", busyPort), newHash)
	r = apply(5)
	after, _ := os.ReadFile(c.Path(layout.DropIn))
	if string(after) != string(before) {
		t.Fatalf("configuration not restored after the failed restart:\n%s", after)
	}
	if out, err := c.Exec(ctx, "systemctl", "is-active", "mosquitto"); err != nil {
		t.Fatalf("broker not back up after the rollback: %s %v", out, err)
	}
	if err := client("new-password").Publish("home/blinds/x", "3"); err != nil {
		t.Fatalf("login after the rollback: %v", err)
	}
	if !strings.Contains(r.Error, "restored") {
		t.Fatalf("rollback error: %q", r.Error)
	}
	t.Logf("rolled back: %s", r.Error)

	// The same booted container, for what else needs the real unit
	// (a boot costs more than these checks).
	u := &inUnit{ctx: ctx, c: c}
	t.Run("per-listener auth", func(t *testing.T) { testPerListenerAuthInRealSystemd(t, u) })
	t.Run("bridge", func(t *testing.T) { testBridgeInRealSystemd(t, u) })
	// Last: it replaces the suite's mosquitto with the next release's.
	if nspawn.RecipeFor(suite).Next != nil {
		t.Run("mosquitto 2.1", func(t *testing.T) { testMosquitto21InRealSystemd(t, u) })
	}
}
