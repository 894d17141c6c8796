package conf_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// debian is Debian's own /etc/mosquitto/mosquitto.conf (pid_file,
// persistence true, persistence_location, log_dest file, include_dir) with
// its paths moved into a test folder, and mosqprov's drop-in in its conf.d:
// the broker reads the tunables exactly where it reads them on a Pi.
type debian struct {
	dir, main, dropIn, lib, log string
	port                        int
	m                           brokertest.Mosquitto
}

// newDebianWith is m's Debian main configuration (the one its package
// ships; trixie's and sid's have no pid_file line, their unit passes it)
// with m's broker.
func newDebianWith(t *testing.T, m brokertest.Mosquitto) *debian {
	t.Helper()
	brokertest.Require(t)
	debianConf, err := os.ReadFile(m.File("/etc/mosquitto/mosquitto.conf"))
	if err != nil {
		t.Fatalf("Debian's mosquitto.conf: %v", err)
	}
	d := &debian{dir: brokertest.Dir(t), port: brokertest.FreePort(t), m: m}
	for _, sub := range []string{"run", "lib", "log", "conf.d"} {
		p := filepath.Join(d.dir, sub)
		os.MkdirAll(p, 0o755)
		if sub != "conf.d" {
			// The broker writes these after dropping to its user.
			exec.Command("chown", "mosquitto", p).Run()
		}
	}
	d.lib, d.log = filepath.Join(d.dir, "lib"), filepath.Join(d.dir, "log", "mosquitto.log")
	d.dropIn = filepath.Join(d.dir, "conf.d", "mosqprov.conf")
	main := string(debianConf)
	for old, moved := range map[string]string{
		"pid_file /run/mosquitto/mosquitto.pid":          "pid_file " + filepath.Join(d.dir, "run", "mosquitto.pid"),
		"persistence_location /var/lib/mosquitto/":       "persistence_location " + d.lib + "/",
		"log_dest file /var/log/mosquitto/mosquitto.log": "log_dest file " + d.log,
		"include_dir /etc/mosquitto/conf.d":              "include_dir " + filepath.Join(d.dir, "conf.d"),
		"persistence true":                               "persistence true",
	} {
		if !strings.Contains(main, "\n"+old+"\n") && strings.HasPrefix(old, "pid_file") && m.Suite != "host" {
			continue
		}
		if !strings.Contains(main, "\n"+old+"\n") {
			t.Fatalf("Debian's mosquitto.conf has no line %q: this test no longer tests what it says", old)
		}
		main = strings.Replace(main, "\n"+old+"\n", "\n"+moved+"\n", 1)
	}
	d.main = filepath.Join(d.dir, "mosquitto.conf")
	if err := os.WriteFile(d.main, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// write renders the drop-in: anonymous plain MQTT on loopback with tun and
// max_connections maxConn (0: none), and returns what the broker needs.
func (d *debian) write(t *testing.T, tun conf.Tunables, maxConn int) system.Need {
	t.Helper()
	var major, minor int
	if _, err := fmt.Sscanf(d.m.Version, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("mosquitto version %q: %v", d.m.Version, err)
	}
	// As apply writes it for the installed broker (pkg/plan's confStep).
	cfg := conf.Config{AllowAnonymous: true, Tunables: tun, MaxConnectionsOnReload: conf.MaxConnectionsReloads(major, minor),
		Listeners: []conf.Listener{{Type: conf.MQTT, Port: d.port, Bind: "127.0.0.1", MaxConnections: maxConn}}}
	res, err := conf.Write(system.NewReal("/"), d.dropIn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res.Need
}

func (d *debian) start(t *testing.T) *brokertest.Broker {
	t.Helper()
	return d.m.StartFile(t, d.main, d.log, d.port)
}

func (d *debian) client() brokertest.Client { return brokertest.Client{Port: d.port} }

func intp(v int) *int    { return &v }
func boolp(v bool) *bool { return &v }

// TestTunablesWithDebianMainConf sets every tunable at once in the drop-in
// next to Debian's mosquitto.conf: the broker starts, logs no error and no
// warning about them, and serves clients.
func TestTunablesWithDebianMainConf(t *testing.T) {
	brokertest.Each(t, testTunablesWithDebianMainConf)
}

func testTunablesWithDebianMainConf(t *testing.T, m brokertest.Mosquitto) {
	d := newDebianWith(t, m)
	d.write(t, conf.Tunables{
		Persistence: boolp(true), AutosaveInterval: intp(600), MaxQueuedMessages: intp(500),
		MaxInflightMessages: intp(10), MaxPacketSize: intp(262144), MemoryLimit: intp(64 << 20),
		PersistentClientExpiration: "14d", SysInterval: intp(30),
		LogTypes: []string{"error", "warning", "notice", "information"}, LogDest: []string{"file", "stderr"},
	}, 100)
	b := d.start(t)
	mustDeliver(t, b, d.client())
	for _, line := range strings.Split(b.Output()+"\n"+b.ReadLog(), "\n") {
		if strings.Contains(line, "Error") || strings.Contains(line, "Warning") || strings.Contains(line, "recommended") || strings.Contains(strings.ToLower(line), "deprecat") {
			t.Errorf("mosquitto %s: %s", m, line)
		}
	}
}

// TestTunablesRefusedTwice proves why persistence_location and the log
// file are not tunables: Debian's mosquitto.conf sets them, and the real
// broker refuses them again in conf.d (even after `log_dest none`), while
// persistence and the other log destinations may be set again. The same on
// 2.0.11, 2.0.21 and 2.1.2.
func TestTunablesRefusedTwice(t *testing.T) {
	brokertest.Each(t, testTunablesRefusedTwice)
}

func testTunablesRefusedTwice(t *testing.T, m brokertest.Mosquitto) {
	for _, c := range []struct{ line, refusal string }{
		{"persistence_location /tmp/", "Duplicate persistence_location value"},
		{"log_dest file /tmp/other.log", `Duplicate "log_dest file" value`},
		{"log_dest none\nlog_dest file /tmp/other.log", `Duplicate "log_dest file" value`},
		{"persistence false", ""},
		{"log_dest none\nlog_dest syslog\nlog_dest stderr", ""},
	} {
		t.Run(strings.Fields(c.line)[0], func(t *testing.T) {
			d := newDebianWith(t, m)
			d.write(t, conf.Tunables{}, 0)
			os.WriteFile(filepath.Join(d.dir, "conf.d", "zz.conf"), []byte(c.line+"\n"), 0o644)
			if c.refusal == "" {
				d.start(t)
				return
			}
			// A refused configuration ends the broker at once, exit 3.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cmd, err := m.Command(ctx, "mosquitto", "-c", d.main)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("the broker took %q twice", c.line)
			}
			// 2.1 quotes the name: Duplicate 'persistence_location' value.
			if err == nil || !strings.Contains(strings.ReplaceAll(string(out), "'", ""), c.refusal) {
				t.Fatalf("refused differently: %v: %s", err, out)
			}
		})
	}
}

// effect is one tunable seen from outside: set (the broker started with it,
// or reloaded onto it) or not, each observation on a running broker.
type effect struct {
	name string
	// before is what the broker starts with; after is the tunable set.
	before, after conf.Tunables
	// maxConnBefore and maxConn are the listener's max_connections
	// before and after (0: none).
	maxConnBefore, maxConn int
	// observe reports whether the broker behaves as `after` says.
	observe func(t *testing.T, d *debian, b *brokertest.Broker) bool
	// reloadsFrom21: a setting mosqprov restarts 2.0 for and reloads 2.1
	// for (max_connections, conf.MaxConnectionsReloads); on20 is whether
	// 2.0's SIGHUP takes it all the same (it takes a changed or removed
	// limit, not a first one: the restart stays, one rule for 2.0).
	reloadsFrom21, on20 bool
}

var effects = []effect{
	{name: "persistence", before: conf.Tunables{Persistence: boolp(false), AutosaveInterval: intp(1)},
		after: conf.Tunables{Persistence: boolp(true), AutosaveInterval: intp(1)}, observe: savesDatabase},
	{name: "persistence off", before: conf.Tunables{AutosaveInterval: intp(1)},
		after: conf.Tunables{Persistence: boolp(false), AutosaveInterval: intp(1)}, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool { return !savesDatabase(t, d, b) }},
	{name: "autosave_interval", after: conf.Tunables{AutosaveInterval: intp(1)}, observe: savesDatabase},
	{name: "sys_interval", after: conf.Tunables{SysInterval: intp(1)}, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		s, err := d.client().Subscribe("$SYS/broker/uptime", 10, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		lines, _ := s.Wait()
		// In 5 s, by default: the retained value and at most one update
		// (every 10 s; 2.1.2 on the wall clock's multiples of 10, so one
		// may fall in any window). With 1: the retained value and an
		// update every second (2.1.2) or every other second (2.0.11,
		// 2.0.21), so at least two.
		return len(lines) >= 3
	}},
	{name: "max_queued_messages", after: conf.Tunables{MaxQueuedMessages: intp(2)}, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		return queued(t, d) == 2
	}},
	{name: "max_packet_size", after: conf.Tunables{MaxPacketSize: intp(1024)}, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		ok, err := brokertest.Roundtrip(d.client(), d.client(), "big", strings.Repeat("x", 2000))
		if err != nil {
			t.Logf("round trip: %v", err)
		}
		return !ok
	}},
	{name: "memory_limit", after: conf.Tunables{MemoryLimit: intp(1 << 20)}, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		if ok, err := brokertest.Roundtrip(d.client(), d.client(), "small", "x"); !ok {
			t.Fatalf("a small message no longer goes through: %v", err)
		}
		// 1.5 MiB: over the limit, and under 2.1's default cap on a
		// packet (2,000,000 bytes; TestDefaultPacketCap).
		return !publishFile(t, d, 3<<19)
	}},
	{name: "log_types", after: conf.Tunables{LogTypes: []string{"error"}}, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		mark := len(b.ReadLog())
		mustDeliver(t, b, d.client())
		return !strings.Contains(b.ReadLog()[mark:], "New client connected")
	}},
	{name: "log_dest", after: conf.Tunables{LogDest: []string{"stderr"}}, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		mark, markOut := len(b.ReadLog()), len(b.Output())
		mustDeliver(t, b, d.client())
		time.Sleep(200 * time.Millisecond)
		return !strings.Contains(b.ReadLog()[mark:], "New client connected") && strings.Contains(b.Output()[markOut:], "New client connected")
	}},
	{name: "max_connections", maxConn: 1, reloadsFrom21: true, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		// 1 + 1: on 2.0.11 a TCP connection closed before its CONNECT (here
		// the check that the broker listens) frees one more slot, so a
		// listener with max_connections 1 holds two clients, and a third
		// is refused (docs/reference.md).
		return holdThenRefused(t, d, 2)
	}},
	{name: "max_connections raised", maxConnBefore: 1, maxConn: 3, reloadsFrom21: true, on20: true, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		return !holdThenRefused(t, d, 2)
	}},
	{name: "max_connections removed", maxConnBefore: 1, maxConn: 0, reloadsFrom21: true, on20: true, observe: func(t *testing.T, d *debian, b *brokertest.Broker) bool {
		return !holdThenRefused(t, d, 2)
	}},
}

// TestTunablesTakeEffect starts the real broker with each tunable and sees
// it act (and not act without it); then starts it without, writes the
// tunable, sends SIGHUP and looks again: what conf.Write says the broker
// needs (reload or restart) must be what the broker really does. These
// are the figures docs/reference.md gives.
//
// Against each broker of brokertest.Versions (2.0.11, 2.0.21, 2.1), the
// versions at once, each one's settings one after the other.
func TestTunablesTakeEffect(t *testing.T) {
	brokertest.Each(t, testTunablesTakeEffect)
}

func testTunablesTakeEffect(t *testing.T, m brokertest.Mosquitto) {
	for _, e := range effects {
		t.Run(e.name, func(t *testing.T) {
			t.Run("restart", func(t *testing.T) {
				d := newDebianWith(t, m)
				d.write(t, e.before, e.maxConnBefore)
				b := d.start(t)
				if e.observe(t, d, b) {
					t.Fatal("seen without the setting: the observation proves nothing")
				}
				b.Stop()
				d.write(t, e.after, e.maxConn)
				b = d.start(t)
				if !e.observe(t, d, b) {
					data, _ := os.ReadFile(d.dropIn)
					t.Fatalf("the broker started with %s and does not act on it\n%s\nlog:\n%s", e.name, data, b.ReadLog())
				}
			})
			t.Run("reload", func(t *testing.T) {
				d := newDebianWith(t, m)
				d.write(t, e.before, e.maxConnBefore)
				b := d.start(t)
				need := d.write(t, e.after, e.maxConn)
				if err := b.Reload(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond)
				reloaded := e.observe(t, d, b)
				t.Logf("mosquitto %s: %s: on SIGHUP %v; conf.Write says %s", m, e.name, reloaded, need)
				// conf.Write, told the installed version as apply tells it,
				// asks a reload on 2.1 and keeps the restart on 2.0.
				if e.reloadsFrom21 && !m.AtLeast(2, 1) {
					if reloaded != e.on20 || need != system.NeedRestart {
						t.Fatalf("mosquitto %s: %s: SIGHUP takes effect: %v (%v), conf.Write says %s (restart)", m, e.name, reloaded, e.on20, need)
					}
					return
				}
				if reloaded != (need == system.NeedReload) {
					t.Fatalf("mosquitto %s: %s: SIGHUP takes effect: %v, but conf.Write says %s", m, e.name, reloaded, need)
				}
			})
		})
	}
}

// savesDatabase reports whether the broker writes mosquitto.db within 2.5 s
// (with autosave_interval 1) after a retained message.
func savesDatabase(t *testing.T, d *debian, b *brokertest.Broker) bool {
	db := filepath.Join(d.lib, "mosquitto.db")
	os.Remove(db)
	if out, err := exec.Command("mosquitto_pub", "-p", fmt.Sprint(d.port), "-t", "keep", "-r", "-m", fmt.Sprint(time.Now().UnixNano())).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	time.Sleep(2500 * time.Millisecond)
	_, err := os.Stat(db)
	return err == nil
}

// queued is how many of 5 QoS 1 messages a persistent session gets after
// being away.
func queued(t *testing.T, d *debian) int {
	id := fmt.Sprintf("q%d", time.Now().UnixNano())
	c := d.client()
	c.Extra = []string{"-c", "-i", id}
	s, err := c.Subscribe("queue", 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.Wait()
	for i := 0; i < 5; i++ {
		if err := d.client().Publish("queue", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	s, err = c.Subscribe("queue", 5, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := s.Wait()
	return len(lines)
}

// publishFile round-trips a message of size bytes (too big for argv).
func publishFile(t *testing.T, d *debian, size int) bool {
	p := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o644)
	s, err := d.client().Subscribe("huge", 1, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	exec.CommandContext(ctx, "mosquitto_pub", "-p", fmt.Sprint(d.port), "-t", "huge", "-q", "1", "-f", p).Run()
	lines, _ := s.Wait()
	return len(lines) == 1
}

// holdThenRefused holds n subscribers connected and reports whether one
// more client is refused.
func holdThenRefused(t *testing.T, d *debian, n int) bool {
	t.Helper()
	var subs []*brokertest.Subscription
	for i := 0; i < n; i++ {
		s, err := d.client().Subscribe("hold", 1, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	time.Sleep(500 * time.Millisecond)
	err := d.client().Publish("x", "y")
	for _, s := range subs {
		s.Wait()
	}
	return err != nil
}
