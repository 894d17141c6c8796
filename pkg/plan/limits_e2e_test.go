package plan

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/internal/nspawn"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// TestOpenFileLimitInRealSystemd proves the LimitNOFILE drop-in on a real
// Debian with systemd as PID 1: Debian's unit runs the broker with 1024 open
// files, so 1100 open connections leave no room for one more client; a
// listener with max_connections: 2000 makes apply write the drop-in, run
// daemon-reload and restart, and the broker then runs with 2064 and takes
// a client after 1100 others; a second apply changes nothing; without
// max_connections the drop-in is removed and the limit is 1024 again. A
// restart that fails after the drop-in was written rolls back the
// configuration and the drop-in, with daemon-reload, so the broker runs
// with 1024 again; and status_reader turned off takes the status identity
// away (its password no longer logs in).
func TestOpenFileLimitInRealSystemd(t *testing.T) {
	nspawn.Require(t)
	brokertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// One suite (bookworm) is enough for a systemd limit; the container's
	// network is its own, reached through c.DialTimeout and NetNS.
	c := nspawn.BootWithMosqprov(ctx, t, nspawn.Suites[0])
	port := brokertest.FreePort(t)
	writeSpec := func(maxConn string) {
		t.Helper()
		spec := fmt.Sprintf("listeners:\n  - {type: mqtt, port: %d, bind: 127.0.0.1%s}\nallow_anonymous: true\n", port, maxConn)
		os.MkdirAll(c.Path("/etc/mosqprov"), 0o755)
		if err := os.WriteFile(c.Path(layout.Spec), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func() string {
		t.Helper()
		out, err := c.Exec(ctx, "mosqprov", "apply", "--yes")
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, out)
		}
		return out
	}
	// limit is the running broker's soft open-file limit.
	limit := func() string {
		t.Helper()
		pid, err := c.Exec(ctx, "systemctl", "show", "-p", "MainPID", "--value", "mosquitto")
		if err != nil {
			t.Fatal(err)
		}
		data, err := c.Exec(ctx, "cat", "/proc/"+strings.TrimSpace(pid)+"/limits")
		if err != nil {
			t.Fatalf("limits of %s: %v %s", pid, err, data)
		}
		for _, line := range strings.Split(data, "\n") {
			if strings.HasPrefix(line, "Max open files") {
				return strings.Fields(line)[3]
			}
		}
		t.Fatalf("no open-file limit in %s", data)
		return ""
	}
	// crowded holds n TCP connections to the broker open and reports
	// whether a client still gets through.
	crowded := func(n int) bool {
		t.Helper()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < n; i++ {
			conn, err := c.DialTimeout(fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, conn)
		}
		time.Sleep(time.Second)
		cl := brokertest.Client{Port: port, NetNS: c.NetNS()}
		ok, err := brokertest.Roundtrip(cl, cl, "crowded", "x")
		if err != nil {
			t.Logf("round trip with %d connections open: %v", n, err)
		}
		return ok
	}

	writeSpec("")
	if out := apply(); strings.Contains(out, "open-file limit") {
		t.Fatalf("a drop-in without max_connections:\n%s", out)
	}
	if got := limit(); got != fmt.Sprint(systemd.DefaultNOFILE) {
		t.Fatalf("Debian's unit runs the broker with %s open files, want systemd's default %d", got, systemd.DefaultNOFILE)
	}
	if crowded(1100) {
		t.Fatal("a client got through 1100 open connections with 1024 open files: the drop-in proves nothing")
	}

	// A restart that fails after the drop-in was written (a second listener
	// on a port something else holds) is rolled back: the configuration
	// and the drop-in are put back, systemd reloaded, and the broker runs
	// on the old files with the old limit.
	busy, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busyPort := busy.Addr().(*net.TCPAddr).Port
	confBefore, _ := os.ReadFile(c.Path(layout.DropIn))
	failing := fmt.Sprintf("listeners:\n  - {type: mqtt, port: %d, bind: 127.0.0.1, max_connections: 2000}\n  - {type: mqtt, port: %d, bind: 127.0.0.1}\nallow_anonymous: true\n", port, busyPort)
	if err := os.WriteFile(c.Path(layout.Spec), []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := c.Exec(ctx, "mosqprov", "apply", "--yes")
	busy.Close()
	if err == nil || !strings.Contains(out, "+ unit open-file limit: created") || !strings.Contains(out, "previous files restored") {
		t.Fatalf("apply with a listener that can't open: %v\n%s", err, out)
	}
	if _, err := os.Stat(c.Path(layout.LimitsDropIn)); !os.IsNotExist(err) {
		t.Fatalf("the drop-in survived the rollback: %v", err)
	}
	if confAfter, _ := os.ReadFile(c.Path(layout.DropIn)); string(confAfter) != string(confBefore) {
		t.Fatalf("configuration not restored:\n%s", confAfter)
	}
	if got := limit(); got != fmt.Sprint(systemd.DefaultNOFILE) {
		t.Fatalf("after the rollback the broker runs with %s open files, want %d: systemd kept the drop-in it no longer has", got, systemd.DefaultNOFILE)
	}

	writeSpec(", max_connections: 2000")
	out = apply()
	if !strings.Contains(out, "+ unit open-file limit: created "+layout.LimitsDropIn+" (LimitNOFILE=2064 for the listeners' max_connections; systemctl daemon-reload done)") ||
		!strings.Contains(out, "restart") {
		t.Fatalf("apply with max_connections 2000:\n%s", out)
	}
	if got := limit(); got != "2064" {
		t.Fatalf("after the drop-in the broker runs with %s open files, want 2064", got)
	}
	if !crowded(1100) {
		t.Fatal("with LimitNOFILE=2064 a client can't get through 1100 open connections")
	}
	if out := apply(); !strings.Contains(out, "No changes") {
		t.Fatalf("second apply:\n%s", out)
	}

	writeSpec("")
	out = apply()
	if !strings.Contains(out, "- unit open-file limit: removed") {
		t.Fatalf("apply without max_connections:\n%s", out)
	}
	if _, err := os.Stat(c.Path(layout.LimitsDropIn)); err == nil {
		t.Fatal("the drop-in is still there")
	}
	if got := limit(); got != fmt.Sprint(systemd.DefaultNOFILE) {
		t.Fatalf("after removing the drop-in the broker runs with %s open files", got)
	}

	// mosqprov status on the real unit: status_reader creates the identity
	// (root-only secret, user, ACL), a second apply changes nothing, and
	// status reads $SYS through it.
	spec := fmt.Sprintf("listeners:\n  - {type: mqtt, port: %d, bind: 127.0.0.1}\nstatus_reader: true\nbroker: {sys_interval: 1}\nacl:\n  - {pattern: true, readwrite: [\"%%u/#\"]}\n", port)
	if err := os.WriteFile(c.Path(layout.Spec), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out = apply()
	if !strings.Contains(out, "+ status identity password: created /etc/mosqprov/status.secret") {
		t.Fatalf("apply with status_reader:\n%s", out)
	}
	if fi, err := os.Stat(c.Path("/etc/mosqprov/status.secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("status secret: %v %v", fi, err)
	}
	if out := apply(); !strings.Contains(out, "No changes") {
		t.Fatalf("second apply with status_reader:\n%s", out)
	}
	out, err = c.Exec(ctx, "mosqprov", "status", "-o", "json")
	if err != nil || !strings.Contains(out, `"version": "2.0.11"`) || !strings.Contains(out, `"uptime_seconds"`) {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	out, err = c.Exec(ctx, "mosqprov", "status")
	if err != nil || !strings.Contains(out, "broker         mosquitto 2.0.11, up ") || !strings.Contains(out, "subscriptions  ") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("mosqprov status on the real unit:\n%s", out)

	// status_reader off: apply takes the identity away and its password
	// no longer logs in.
	secret, err := os.ReadFile(c.Path("/etc/mosqprov/status.secret"))
	if err != nil {
		t.Fatal(err)
	}
	reader := brokertest.Client{Port: port, NetNS: c.NetNS(), User: "mosqprov-status", Password: strings.TrimSpace(string(secret))}
	if err := reader.Publish("$SYS/x", "x"); err != nil && strings.Contains(err.Error(), "not authori") {
		t.Fatalf("the identity can't log in while on: %v", err)
	}
	spec = strings.Replace(spec, "status_reader: true\n", "", 1)
	if err := os.WriteFile(c.Path(layout.Spec), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out = apply()
	if !strings.Contains(out, "- status identity password: removed /etc/mosqprov/status.secret") {
		t.Fatalf("apply with status_reader off:\n%s", out)
	}
	if err := reader.Publish("$SYS/x", "x"); err == nil {
		t.Fatal("the status identity still logs in after status_reader was turned off")
	}
	if out := apply(); !strings.Contains(out, "No changes") {
		t.Fatalf("second apply with status_reader off:\n%s", out)
	}
}
