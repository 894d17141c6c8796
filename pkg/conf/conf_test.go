package conf_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

var update = flag.Bool("update", false, "rewrite testdata/conf/*.golden")

func goldenConfigs() map[string]conf.Config {
	article := conf.Default()
	withACL := conf.Default()
	withACL.ACLFile = "/etc/mosquitto/acl"
	all := conf.Default()
	all.AllowAnonymous = true
	all.Listeners = []conf.Listener{
		{Type: conf.MQTT, Port: 1883, Bind: "::1"},
		{Type: conf.MQTTS, Port: 8883, Bind: "192.168.1.10", TLSVersion: conf.TLS13},
		{Type: conf.MQTTS, Port: 8884, MutualTLS: true},
		{Type: conf.WS, Port: 8080, Bind: "127.0.0.1"},
		{Type: conf.WSS, Port: 9443, MutualTLS: true},
	}
	standalone := conf.Default()
	standalone.Standalone = conf.DebianStandalone()
	standalone.ACLFile = "/etc/mosquitto/acl"
	noPasswd := conf.Config{Listeners: []conf.Listener{{Type: conf.MQTT, Port: 1883, Bind: "0.0.0.0"}}, AllowAnonymous: true}
	return map[string]conf.Config{
		"article":    article,
		"acl":        withACL,
		"all-types":  all,
		"standalone": standalone,
		"anonymous":  noPasswd,
	}
}

func TestRenderGolden(t *testing.T) {
	for name, cfg := range goldenConfigs() {
		t.Run(name, func(t *testing.T) {
			got, err := conf.Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("..", "..", "testdata", "conf", name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("rendered %s differs from %s (-want +got):\n%s", name, golden, diff)
			}
			if !conf.IsManaged(got) {
				t.Error("rendered file does not start with the managed-by header")
			}
			// Parse reads back exactly what was rendered.
			back, err := conf.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(cfg.WithDefaults(), back); diff != "" {
				t.Errorf("Parse(Render(cfg)) != cfg (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseRefusesHandEdits: a file that keeps the header but was edited
// into something Render refuses is not read back as ours, so the acl
// commands warn instead of rewriting it.
func TestParseRefusesHandEdits(t *testing.T) {
	good, err := conf.Render(conf.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range []struct{ old, new string }{
		{"listener 1883 127.0.0.1", "listener 1883 localhost"},
		{"allow_anonymous false", "allow_anonymous yes"},
		{"tls_version tlsv1.2", "tls_version tlsv1"},
		{"password_file /etc/mosquitto/passwd", "password_file passwd"},
		{"protocol mqtt", "max_connections 10"},
	} {
		bad := strings.Replace(string(good), edit.old, edit.new, 1)
		if bad == string(good) {
			t.Fatalf("%q not in the rendered file", edit.old)
		}
		if cfg, err := conf.Parse([]byte(bad)); err == nil {
			t.Errorf("Parse accepted %q: %+v", edit.new, cfg)
		}
	}
}

// TestParseRefusesBadStandaloneValues: pid_file and persistence_location
// take exactly one value, as every other directive Parse reads back; a hand
// edit that breaks one is refused, not read as an empty setting.
func TestParseRefusesBadStandaloneValues(t *testing.T) {
	cfg := conf.Default()
	cfg.Standalone = conf.DebianStandalone()
	good, err := conf.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.Parse(good); err != nil {
		t.Fatalf("the rendered file: %v", err)
	}
	for _, edit := range []struct{ old, new string }{
		{"pid_file " + cfg.Standalone.PIDFile, "pid_file"},
		{"pid_file " + cfg.Standalone.PIDFile, "pid_file /run/a.pid /run/b.pid"},
		{"persistence_location " + cfg.Standalone.PersistenceDir, "persistence_location"},
		{"persistence_location " + cfg.Standalone.PersistenceDir, "persistence_location /var/lib/a /var/lib/b"},
	} {
		bad := strings.Replace(string(good), edit.old, edit.new, 1)
		if bad == string(good) {
			t.Fatalf("%q not in the rendered file", edit.old)
		}
		got, err := conf.Parse([]byte(bad))
		if err == nil {
			t.Errorf("Parse accepted %q: %+v", edit.new, got.Standalone)
			continue
		}
		// The error names the line and what is wrong with it, like every
		// other value Parse refuses.
		if want := edit.new + ": expected one value"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%q: error %q, want the line and %q", edit.new, err, want)
		}
	}
}

func TestRenderLeavesOutACLFileWithoutRules(t *testing.T) {
	got, err := conf.Render(conf.Default())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "acl_file") {
		t.Errorf("acl_file rendered without an ACL file:\n%s", got)
	}
	if !strings.Contains(string(got), "\nallow_anonymous false\n") {
		t.Errorf("allow_anonymous false not written explicitly:\n%s", got)
	}
}

// TestInjectionRejected feeds every value that lands in the file with what
// would add a line or a directive; each must be an input error naming the
// field, before anything is rendered.
func TestInjectionRejected(t *testing.T) {
	base := conf.Default
	cases := []struct {
		name  string
		edit  func(*conf.Config)
		field string
	}{
		{"newline in password file", func(c *conf.Config) { c.PasswordFile = "/etc/mosquitto/passwd\nallow_anonymous true" }, "--password-file"},
		{"carriage return in acl file", func(c *conf.Config) { c.ACLFile = "/etc/mosquitto/acl\rallow_anonymous true" }, "--acl-file"},
		{"NUL in cert", func(c *conf.Config) { c.CertFile = "/etc/x\x00.crt" }, "--cert"},
		{"blank then directive in key", func(c *conf.Config) { c.KeyFile = "/etc/x.key allow_anonymous true" }, "--key"},
		{"tab in cafile", func(c *conf.Config) { c.CAFile = "/etc/ca.crt\tx" }, "--cafile"},
		{"comment in cafile", func(c *conf.Config) { c.CAFile = "/etc/ca.crt#x" }, "--cafile"},
		{"unicode line separator", func(c *conf.Config) { c.PasswordFile = "/etc/p\u2028allow_anonymous true" }, "--password-file"},
		{"invalid UTF-8", func(c *conf.Config) { c.PasswordFile = "/etc/\xff" }, "--password-file"},
		{"relative path", func(c *conf.Config) { c.PasswordFile = "passwd" }, "--password-file"},
		{"dot-dot path", func(c *conf.Config) { c.PasswordFile = "/etc/mosquitto/../shadow" }, "--password-file"},
		{"newline in bind", func(c *conf.Config) { c.Listeners[0].Bind = "127.0.0.1\nlistener 1884" }, "--listener mqtt"},
		{"host name as bind", func(c *conf.Config) { c.Listeners[0].Bind = "localhost" }, "--listener mqtt"},
		{"zone in bind", func(c *conf.Config) { c.Listeners[0].Bind = "fe80::1%eth0" }, "--listener mqtt"},
		{"port 0", func(c *conf.Config) { c.Listeners[0].Port = 0 }, "--listener mqtt"},
		{"port 65536", func(c *conf.Config) { c.Listeners[0].Port = 65536 }, "--listener mqtt"},
		{"duplicate port", func(c *conf.Config) { c.Listeners[1].Port = 1883 }, "--listener"},
		{"unknown type", func(c *conf.Config) { c.Listeners[0].Type = "mqtt\nallow_anonymous" }, "--listener"},
		{"tls version injection", func(c *conf.Config) { c.Listeners[1].TLSVersion = "tlsv1.2\nrequire_certificate false" }, "--tls-version"},
		{"tls 1.1", func(c *conf.Config) { c.Listeners[1].TLSVersion = "tlsv1.1" }, "--tls-version"},
		{"mutual TLS on plain", func(c *conf.Config) { c.Listeners[0].MutualTLS = true }, "--listener mqtt"},
		{"tls version on plain", func(c *conf.Config) { c.Listeners[0].TLSVersion = conf.TLS12 }, "--listener mqtt"},
		{"websockets only", func(c *conf.Config) { c.Listeners = []conf.Listener{{Type: conf.WSS, Port: 9443}} }, "--listener"},
		{"no listener", func(c *conf.Config) { c.Listeners = nil }, "--listener"},
		{"standalone log injection", func(c *conf.Config) {
			c.Standalone = conf.DebianStandalone()
			c.Standalone.LogFile = "/var/log/m.log\nlog_dest stdout"
		}, "--log-file"},
		{"standalone pid file injection", func(c *conf.Config) {
			c.Standalone = conf.DebianStandalone()
			c.Standalone.PIDFile = "/run/m.pid\nallow_anonymous true"
		}, "--pid-file"},
		{"standalone persistence injection", func(c *conf.Config) {
			c.Standalone = conf.DebianStandalone()
			c.Standalone.PersistenceDir = "/var/lib/m/ #"
		}, "--persistence-dir"},
		{"missing cert with TLS", func(c *conf.Config) { c.CertFile = "" }, "--cert"},
		{"missing key with TLS", func(c *conf.Config) { c.KeyFile = "" }, "--key"},
		{"missing cafile with TLS", func(c *conf.Config) { c.CAFile = "" }, "--cafile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			c.edit(&cfg)
			out, err := conf.Render(cfg)
			if err == nil {
				t.Fatalf("rendered:\n%s", out)
			}
			var ie *errs.InputError
			if !errors.As(err, &ie) || ie.Field != c.field {
				t.Fatalf("error %q (%T), want an input error for %s", err, err, c.field)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestWriteIdempotent(t *testing.T) {
	root := t.TempDir()
	sys := system.NewReal(root, system.WithRunner(&system.Recorder{}))
	p := "/etc/mosquitto/conf.d/mosqprov.conf"
	cfg := conf.Default()
	change, need, err := step(conf.Write(sys, p, cfg))
	if err != nil || change.Action != system.Create || need != system.NeedRestart {
		t.Fatalf("first write: %+v need %v err %v", change, need, err)
	}
	before, _ := os.Stat(filepath.Join(root, p))
	time.Sleep(10 * time.Millisecond)
	change, need, err = step(conf.Write(sys, p, cfg))
	if err != nil || change.Action != system.Noop || need != system.NeedNothing {
		t.Fatalf("second write: %+v need %v err %v", change, need, err)
	}
	after, _ := os.Stat(filepath.Join(root, p))
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("unchanged write touched the file")
	}
	if after.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", after.Mode().Perm())
	}

	// A listener change needs a restart; an authentication line a reload.
	cfg.Listeners[1].Port = 8884
	if _, need, _ := step(conf.Write(sys, p, cfg)); need != system.NeedRestart {
		t.Errorf("listener change: need %v, want restart", need)
	}
	cfg.ACLFile = "/etc/mosquitto/acl"
	cfg.AllowAnonymous = true
	if _, need, _ := step(conf.Write(sys, p, cfg)); need != system.NeedReload {
		t.Errorf("acl_file and allow_anonymous change: need %v, want reload", need)
	}

	// Bad input changes nothing.
	data, _ := os.ReadFile(filepath.Join(root, p))
	cfg.PasswordFile = "/x\ny"
	if _, _, err := step(conf.Write(sys, p, cfg)); !errs.IsInput(err) {
		t.Fatalf("bad input: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(root, p)); string(now) != string(data) {
		t.Error("a rejected configuration changed the file")
	}
}

func TestWriteDryRun(t *testing.T) {
	root := t.TempDir()
	sys := system.NewDryRun(system.NewReal(root))
	change, need, err := step(conf.Write(sys, "/etc/mosquitto/conf.d/mosqprov.conf", conf.Default()))
	if err != nil || change.Action != system.Create || need != system.NeedRestart {
		t.Fatalf("dry run: %+v need %v err %v", change, need, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc")); err == nil {
		t.Error("dry run created files")
	}
}

func TestReadBroker(t *testing.T) {
	root := t.TempDir()
	sys := system.NewReal(root)
	files := map[string]string{
		"/etc/mosquitto/mosquitto.conf":    "pid_file /run/mosquitto/mosquitto.pid\nlog_dest file /var/log/mosquitto/mosquitto.log\nport 1884\nbind_address 127.0.0.1\ninclude_dir /etc/mosquitto/conf.d\n",
		"/etc/mosquitto/conf.d/b.conf":     "listener 9001\nprotocol websockets\n",
		"/etc/mosquitto/conf.d/A.conf":     "listener 1885 10.0.0.1\n# listener 1\n  listener 1886\npassword_file /x\n",
		"/etc/mosquitto/conf.d/a.conf":     "listener 0 /run/mosquitto.sock\n",
		"/etc/mosquitto/conf.d/README":     "listener 7777\n",
		"/etc/mosquitto/conf.d/c.conf.bak": "listener 7778\n",
		"/etc/mosquitto/conf.d/.conf":      "listener 7779\n",
	}
	for p, data := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(data), 0o644)
	}
	b, err := conf.ReadBroker(sys, "/etc/mosquitto/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []conf.Declared{
		{File: "/etc/mosquitto/mosquitto.conf", Line: 3, Port: 1884, Bind: "127.0.0.1"},
		{File: "/etc/mosquitto/conf.d/A.conf", Line: 1, Port: 1885, Bind: "10.0.0.1"},
		{File: "/etc/mosquitto/conf.d/A.conf", Line: 3, Port: 1886},
		{File: "/etc/mosquitto/conf.d/b.conf", Line: 1, Port: 9001, WebSockets: true},
	}
	if diff := cmp.Diff(want, b.Listeners); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, b.Bound()); diff != "" {
		t.Errorf("bound listeners (-want +got):\n%s", diff)
	}
	wantFiles := []string{"/etc/mosquitto/mosquitto.conf", "/etc/mosquitto/conf.d/A.conf", "/etc/mosquitto/conf.d/a.conf", "/etc/mosquitto/conf.d/b.conf"}
	if diff := cmp.Diff(wantFiles, b.Files); diff != "" {
		t.Errorf("files in load order (-want +got):\n%s", diff)
	}
	if !cmp.Equal(b.UnixSockets, []string{"/run/mosquitto.sock"}) || !cmp.Equal(b.LogFiles, []string{"/var/log/mosquitto/mosquitto.log"}) {
		t.Errorf("unix sockets %q, log files %q", b.UnixSockets, b.LogFiles)
	}
}

// TestBound is what the service commands wait for: 2.0.11 opens
// 127.0.0.1:1883 when nothing is declared ("local only mode"), nothing on
// TCP when only a unix socket is (both checked with the real broker).
func TestBound(t *testing.T) {
	for _, tt := range []struct {
		name, main string
		want       []conf.Declared
	}{
		{"nothing declared", "pid_file /run/mosquitto/mosquitto.pid\n", []conf.Declared{conf.DefaultListener}},
		{"unix socket only", "listener 0 /run/mosquitto/sock\n", nil},
		{"deprecated port", "port 1884\n", []conf.Declared{{File: "/m.conf", Line: 1, Port: 1884}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sys := system.NewReal(t.TempDir())
			os.WriteFile(sys.HostPath("/m.conf"), []byte(tt.main), 0o644)
			b, err := conf.ReadBroker(sys, "/m.conf")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, b.Bound()); diff != "" {
				t.Errorf("bound (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheck runs conf check's rules on a target tree: a clash with another
// conf.d file, a duplicate password_file, a key the broker's user can't
// read, a missing file, a drop-in in a folder mosquitto.conf doesn't include.
func TestCheck(t *testing.T) {
	root := t.TempDir()
	sys := system.NewReal(root)
	write := func(p, data string, mode os.FileMode) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(data), mode)
		os.Chmod(filepath.Join(root, p), mode)
	}
	write("/etc/mosquitto/mosquitto.conf", "include_dir /etc/mosquitto/conf.d\n", 0o644)
	write("/etc/mosquitto/conf.d/old.conf", "listener 8883\nlistener 1883 192.168.1.2\npassword_file /etc/mosquitto/other\nallow_anonymous true\n", 0o644)
	write("/etc/mosquitto/passwd", "", 0o644)
	write("/etc/mosquitto/certs/ca.crt", "", 0o644)
	write("/etc/mosquitto/certs/server.crt", "", 0o644)
	write("/etc/mosquitto/certs/server.key", "", 0o600) // root's, 0600: the broker's user can't read it

	findings := conf.Check(sys, conf.Default(), "/etc/mosquitto/conf.d/mosqprov.conf")
	for _, want := range []struct{ check, text string }{
		{"port-clash", "port 8883 (mqtts) is also a listener in /etc/mosquitto/conf.d/old.conf:1"},
		{"duplicate", "password_file is also set in /etc/mosquitto/conf.d/old.conf:3"},
		{"file", "keyfile /etc/mosquitto/certs/server.key is not readable by user mosquitto"},
		{"override", "allow_anonymous true in /etc/mosquitto/conf.d/old.conf:4 is read after"},
	} {
		if !hasFinding(findings, want.check, want.text) {
			t.Errorf("missing %s finding %q in:\n%v", want.check, want.text, findings)
		}
	}
	// 1883 on 127.0.0.1 and on 192.168.1.2 don't clash.
	if hasFinding(findings, "port-clash", "port 1883") {
		t.Errorf("loopback and a LAN address on one port reported as a clash: %v", findings)
	}
	if !conf.Failed(findings) {
		t.Error("Failed() is false with errors")
	}

	// A drop-in mosquitto.conf never reads, and a missing ACL file.
	cfg := conf.Default()
	cfg.ACLFile = "/etc/mosquitto/acl"
	findings = conf.Check(sys, cfg, "/etc/mosquitto/other.d/mosqprov.conf")
	if !hasFinding(findings, "include", "does not include /etc/mosquitto/other.d/mosqprov.conf") {
		t.Errorf("no include finding: %v", findings)
	}
	if !hasFinding(findings, "file", "acl_file /etc/mosquitto/acl does not exist") {
		t.Errorf("no missing-file finding: %v", findings)
	}
}

func TestWarnings(t *testing.T) {
	cfg := conf.Config{PasswordFile: "/p", CertFile: "/c", KeyFile: "/k", CAFile: "/ca", Listeners: []conf.Listener{
		{Type: conf.MQTT, Port: 1883, Bind: "127.0.0.1"},
		{Type: conf.MQTT, Port: 1884, Bind: "0.0.0.0"},
		{Type: conf.WS, Port: 8080, Bind: "127.0.0.1"},
		{Type: conf.WSS, Port: 9443, Bind: "192.168.1.2", TLSVersion: conf.TLS13},
	}}
	got := map[string]int{}
	for _, f := range conf.Warnings(cfg) {
		got[f.Check]++
		if strings.Contains(f.Message, "port 1883") {
			t.Errorf("loopback plain listener warned about: %s", f.Message)
		}
	}
	want := map[string]int{"cleartext": 2, "websockets-bind": 2, "websockets-tls": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings by check (-want +got):\n%s", diff)
	}
}

func BenchmarkRender(b *testing.B) {
	cfg := goldenConfigs()["all-types"]
	for b.Loop() {
		if _, err := conf.Render(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// step splits a converge result into the file's one change and the need.
func step(res system.Result, err error) (system.Change, system.Need, error) {
	var c system.Change
	if len(res.Changes) > 0 {
		c = res.Changes[0]
	}
	return c, res.Need, err
}
