package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/internal/nspawn"
)

// TestInstallAndServiceInRealSystemd boots each suite (bookworm, trixie)
// without mosquitto, installs it with `mosqprov install` (real apt, from
// the tree's local repository: the container has no network), then drives
// the unit with `mosqprov service ...` and forces a failed restart that
// must roll back. After every step the unit's state comes from systemctl
// and the broker is proven with a real MQTT client.
func TestInstallAndServiceInRealSystemd(t *testing.T) {
	nspawn.Require(t)
	brokertest.Require(t)
	for _, suite := range nspawn.Suites {
		t.Run(suite, func(t *testing.T) { testInstallAndService(t, suite) })
	}
}

func testInstallAndService(t *testing.T, suite string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	// Something listens on the host's 1883 all along (a dummy, or whatever
	// already did): the broker in the container listens on its own 1883,
	// and every client below must reach that one.
	// (Held once the boot lock is ours: another test's container may
	// still share the host's network.)
	c := nspawn.BootWithMosqprov(ctx, t, suite)
	nspawn.HoldHostPort(t, 1883)
	e := &env{ctx: ctx, c: c}
	debVersion, err := c.RepoVersion("mosquitto")
	if err != nil {
		t.Fatal(err)
	}
	version, _, _ := strings.Cut(debVersion, "-") // 2.0.11-1.2+deb12u2: 2.0.11
	series := version[:strings.LastIndex(version, ".")]

	// The broker's listener comes from a drop-in written before the package
	// exists: Debian's mosquitto.conf includes conf.d, and the package's
	// postinst starts the broker on it. The container has its own network,
	// so 1883 is its own.
	const port = 1883
	e.write(t, "/etc/mosquitto/conf.d/e2e.conf", fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port))

	t.Run("dry-run install runs nothing", func(t *testing.T) {
		out := e.mosqprov(t, 0, "--dry-run", "install")
		mustContain(t, out, "~ packages: would run (DEBIAN_FRONTEND=noninteractive apt-get install -y ", "+ package mosquitto: would create (candidate "+version)
		if out, err := c.Exec(ctx, "dpkg-query", "-W", "mosquitto"); err == nil {
			t.Fatalf("a dry run installed mosquitto: %s", out)
		}
	})
	t.Run("install", func(t *testing.T) {
		// A fresh image whose apt has no lists yet: install must update first.
		e.exec("sh", "-c", "rm -rf /var/lib/apt/lists/*")
		// And, as on a Pi just booted, another package manager holds dpkg's
		// lock (an fcntl lock taken from the host on the container's file,
		// as dpkg takes it) for the first seconds: install waits, says so,
		// then goes on.
		release := holdLock(t, c.Path("/var/lib/dpkg/lock-frontend"), 10*time.Second)
		defer release()
		start := time.Now()
		out := e.mosqprov(t, 0, "install")
		t.Logf("install took %s", time.Since(start).Round(time.Second))
		mustContain(t, out, "apt: waiting for /var/lib/dpkg/lock-frontend, held by another process (up to 10m0s; --lock-timeout)",
			"apt: lock released, continuing")
		// apt's own progress is streamed.
		mustContain(t, out, "~ package lists: ran (DEBIAN_FRONTEND=noninteractive apt-get update -o DPkg::Lock::Timeout=", "; apt doesn't know mosquitto, mosquitto-clients yet)", "Setting up mosquitto ("+version,
			"+ package mosquitto: created ("+version, "+ package mosquitto-clients: created ("+version, fmt.Sprintf("broker: mosquitto %s (%s series)", version, series))
		e.up(t, port)
	})
	t.Run("install again changes nothing", func(t *testing.T) {
		out := e.mosqprov(t, 0, "install")
		mustContain(t, out, "= package mosquitto: unchanged ("+version, "= package mosquitto-clients: unchanged ("+version)
		if strings.Contains(out, "apt-get") {
			t.Errorf("second install ran apt:\n%s", out)
		}
	})
	t.Run("status", func(t *testing.T) {
		out := e.mosqprov(t, 0, "service", "status")
		mustContain(t, out, "mosquitto: active (running)", fmt.Sprintf("listener 127.0.0.1:%d: accepting connections", port))
	})
	t.Run("enable", func(t *testing.T) {
		e.exec("systemctl", "disable", "mosquitto")
		mustContain(t, e.mosqprov(t, 0, "service", "enable"), "~ service mosquitto: ran (systemctl enable mosquitto)")
		mustContain(t, e.mosqprov(t, 0, "service", "enable"), "= service mosquitto: unchanged (already enabled)")
		if got := e.exec("systemctl", "is-enabled", "mosquitto"); got != "enabled" {
			t.Errorf("is-enabled says %q", got)
		}
		e.up(t, port)
	})
	t.Run("stop and start", func(t *testing.T) {
		mustContain(t, e.mosqprov(t, 0, "service", "stop"), "~ service mosquitto: ran (systemctl stop mosquitto)")
		mustContain(t, e.mosqprov(t, 0, "service", "stop"), "= service mosquitto: unchanged (not running (inactive))")
		e.down(t, port)
		e.mosqprov(t, 1, "service", "status") // not active: exit 1
		mustContain(t, e.mosqprov(t, 0, "service", "start"), "~ service mosquitto: ran (systemctl start mosquitto; active, accepting on 127.0.0.1:")
		mustContain(t, e.mosqprov(t, 0, "service", "start"), "= service mosquitto: unchanged (already active)")
		e.up(t, port)
	})
	t.Run("failed start shows why", func(t *testing.T) {
		// Written behind mosqprov's back (mosqprov validates what it
		// writes): the broker refuses to start, and the reason is in the
		// journal, not in systemctl's answer.
		e.exec("systemctl", "stop", "mosquitto")
		e.write(t, "/etc/mosquitto/conf.d/broken.conf", "no_such_option 1\n")
		out := e.mosqprov(t, 1, "service", "start")
		mustContain(t, out, "mosqprov: start mosquitto: systemctl start mosquitto: exit status 1",
			"last journal lines (journalctl -u mosquitto -n 20 --no-pager):", `Error: Unknown configuration variable "no_such_option".`)
		if err := os.Remove(c.Path("/etc/mosquitto/conf.d/broken.conf")); err != nil {
			t.Fatal(err)
		}
		// Restart=on-failure may bring it back on its own meanwhile; either
		// way start leaves it up.
		e.exec("systemctl", "reset-failed", "mosquitto")
		e.mosqprov(t, 0, "service", "start")
		e.up(t, port)
	})
	t.Run("restart", func(t *testing.T) {
		pid := e.mainPID()
		mustContain(t, e.mosqprov(t, 0, "service", "restart"), "~ service mosquitto: ran (systemctl restart mosquitto; active")
		if e.mainPID() == pid {
			t.Errorf("restart kept pid %s", pid)
		}
		e.up(t, port)
	})
	t.Run("reload", func(t *testing.T) {
		pid := e.mainPID()
		mustContain(t, e.mosqprov(t, 0, "service", "reload"), "~ service mosquitto: ran (systemctl reload mosquitto; active")
		if got := e.mainPID(); got != pid {
			t.Errorf("reload replaced the broker: pid %s -> %s", pid, got)
		}
		e.up(t, port)
		// Without procps the unit's ExecReload (/bin/kill) can't run; the
		// SIGHUP goes through systemd instead.
		e.exec("mv", "/bin/kill", "/bin/kill.off")
		defer e.exec("mv", "/bin/kill.off", "/bin/kill")
		mustContain(t, e.mosqprov(t, 0, "service", "reload"), "~ service mosquitto: ran (systemctl kill --kill-who=main --signal=SIGHUP mosquitto; active")
		if got := e.mainPID(); got != pid {
			t.Errorf("reload replaced the broker: pid %s -> %s", pid, got)
		}
		e.up(t, port)
	})
	t.Run("dry runs run nothing", func(t *testing.T) {
		pid := e.mainPID()
		mustContain(t, e.mosqprov(t, 0, "--dry-run", "service", "restart"), "~ service mosquitto: would run (systemctl restart mosquitto)")
		mustContain(t, e.mosqprov(t, 0, "--dry-run", "service", "stop"), "~ service mosquitto: would run (systemctl stop mosquitto)")
		// A configuration change says which restart it would do.
		out := e.mosqprov(t, 0, "--dry-run", "conf", "write", "--listener", fmt.Sprintf("mqtt:%d:127.0.0.1", port+1), "--allow-anonymous", "--password-file", "", "--acl-file", "")
		mustContain(t, out, "~ service mosquitto: would restart (systemctl restart mosquitto)")
		if _, err := os.Stat(c.Path("/etc/mosquitto/conf.d/mosqprov.conf")); !os.IsNotExist(err) {
			t.Errorf("a dry run wrote the drop-in (%v)", err)
		}
		if got := e.mainPID(); got != pid {
			t.Errorf("a dry run restarted the broker: pid %s -> %s", pid, got)
		}
		e.up(t, port)
	})
	t.Run("failed restart is rolled back", func(t *testing.T) {
		// Someone else holds the port the new configuration asks for: the
		// broker can't start on it, so the drop-in must be taken back and
		// the broker restarted on the old configuration.
		taken, err := c.Listen("127.0.0.1:0") // in the container's network

		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		busy := taken.Addr().(*net.TCPAddr).Port
		pid := e.mainPID()
		out := e.mosqprov(t, 5, "conf", "write", "--listener", fmt.Sprintf("mqtt:%d:127.0.0.1", busy), "--allow-anonymous", "--password-file", "", "--acl-file", "")
		mustContain(t, out, "created /etc/mosquitto/conf.d/mosqprov.conf",
			"mosqprov: restart mosquitto: broker failed to start with the new files; previous files restored",
			"last journal lines (journalctl -u mosquitto -n 20 --no-pager):",
			"/var/log/mosquitto/mosquitto.log (last lines):", "Error: Address already in use")
		if _, err := os.Stat(c.Path("/etc/mosquitto/conf.d/mosqprov.conf")); !os.IsNotExist(err) {
			t.Errorf("the refused drop-in is still there (%v)", err)
		}
		if e.mainPID() == pid {
			t.Errorf("broker was not restarted on the restored files (pid %s)", pid)
		}
		e.up(t, port)
	})
}

type env struct {
	ctx context.Context
	c   *nspawn.Container
}

// mosqprov runs mosqprov in the container and checks its exit code.
func (e *env) mosqprov(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	out, err := e.c.Exec(e.ctx, "mosqprov", args...)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mosqprov %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if code != wantCode {
		t.Fatalf("mosqprov %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
	}
	return out
}

// exec runs a command in the container and returns its trimmed output
// (a non-zero exit is fine: is-active says "inactive" that way).
func (e *env) exec(name string, args ...string) string {
	out, _ := e.c.Exec(e.ctx, name, args...)
	return strings.TrimSpace(out)
}

func (e *env) write(t *testing.T, p, data string) {
	t.Helper()
	host := e.c.Path(p)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) mainPID() string {
	return e.exec("systemctl", "show", "-p", "MainPID", "--value", "mosquitto")
}

// up checks systemd says active and a real MQTT message goes through, from
// the container's mosquitto_pub and between the host's mosquitto_sub and
// mosquitto_pub run in the container's network.
func (e *env) up(t *testing.T, port int) {
	t.Helper()
	if got := e.exec("systemctl", "is-active", "mosquitto"); got != "active" {
		t.Fatalf("systemctl is-active mosquitto: %q\n%s", got, e.exec("journalctl", "-u", "mosquitto", "-n", "20", "--no-pager"))
	}
	if out, err := e.c.Exec(e.ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "e2e/in", "-m", "hello", "-q", "1"); err != nil {
		t.Fatalf("mosquitto_pub in the container: %v: %s", err, out)
	}
	client := brokertest.Client{Port: port, NetNS: e.c.NetNS()}
	ok, err := brokertest.Roundtrip(client, client, "e2e/host", "hello")
	if err != nil || !ok {
		t.Fatalf("MQTT roundtrip from the host's clients in the container's network on %d: delivered=%v, %v", port, ok, err)
	}
}

func (e *env) down(t *testing.T, port int) {
	t.Helper()
	if got := e.exec("systemctl", "is-active", "mosquitto"); got != "inactive" {
		t.Fatalf("systemctl is-active mosquitto: %q, want inactive", got)
	}
	if err := (brokertest.Client{Port: port, NetNS: e.c.NetNS()}).Publish("e2e/down", "x"); err == nil {
		t.Fatal("a stopped broker accepted a publish")
	}
}

func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// holdLock takes a POSIX write lock on path, as dpkg does, and releases it
// after d (or when the returned func is called).
func holdLock(t *testing.T, path string, d time.Duration) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { f.Close() }) } // closing drops the lock
	time.AfterFunc(d, release)
	return release
}
