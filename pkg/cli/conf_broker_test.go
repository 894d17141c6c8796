package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// TestConfWritePerListenerRealBroker: `conf write` with ,anonymous and
// ,user=NAME writes what the real broker (each of brokertest.Versions)
// enforces: anonymous clients on one listener only, alice alone on the
// second, every user on the third; with user= dropped, the listener's file
// is removed and, after the one reload or restart conf write asks for, bob
// logs in there; a rerun asks nothing of the broker.
func TestConfWritePerListenerRealBroker(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, testConfWritePerListener)
}

func testConfWritePerListener(t *testing.T, m brokertest.Mosquitto) {
	root := brokertest.Root(t)
	// The target's broker is m: its version, as apply records it, and its plugins.
	if _, err := state.Record(system.NewReal(root), nil, m.Version); err != nil {
		t.Fatal(err)
	}
	if libs, _ := filepath.Glob(m.File("/usr/lib/*-linux-*/mosquitto/mosquitto_password_file.so")); len(libs) > 0 {
		rel, _ := filepath.Rel(m.File("/"), filepath.Dir(libs[0]))
		dir := filepath.Join(root, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "mosquitto_password_file.so"), nil, 0o644)
	}
	if _, err := passwd.Converge(system.NewReal(root), layout.PasswordFile, []passwd.Desired{{Name: "alice", Password: "alice-secret"}, {Name: "bob", Password: "bob-secret"}}, passwd.Options{}); err != nil {
		t.Fatal(err)
	}
	local, lan, all := brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)
	write := func(lanOpts string) []string {
		t.Helper()
		a, rec, out := recordedApp(t, root, false)
		args := []string{"conf", "write",
			"--listener", fmt.Sprintf("mqtt:%d:127.0.0.1,anonymous", local),
			"--listener", fmt.Sprintf("mqtt:%d:127.0.0.1%s", lan, lanOpts),
			"--listener", fmt.Sprintf("mqtt:%d:127.0.0.1", all)}
		if code := Run(context.Background(), a, args); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
		if strings.Contains(strings.ToLower(out.String()), "warning") {
			t.Errorf("%v warns:\n%s", args, out)
		}
		return mutating(rec)
	}
	confText := func() string {
		data, err := os.ReadFile(filepath.Join(root, layout.DropIn))
		if err != nil {
			t.Fatal(err)
		}
		return brokertest.Rooted(root, string(data))
	}
	if calls := write(",user=alice"); !cmp.Equal(calls, []string{"systemctl restart mosquitto"}) {
		t.Errorf("first write: systemctl calls %q", calls)
	}
	t.Logf("mosquitto %s, conf write wrote:\n%s", m, confText())
	b := m.Start(t, root, confText(), local, lan, all)
	try := func(port int, user, pw string) error {
		return (brokertest.Client{Port: port, User: user, Password: pw}).Publish("t/auth", "x")
	}
	check := func(bobOnLAN bool) {
		t.Helper()
		for _, c := range []struct {
			port     int
			user, pw string
			ok       bool
		}{
			{local, "", "", true},
			{local, "bob", "bob-secret", true},
			{lan, "", "", false},
			{lan, "alice", "alice-secret", true},
			{lan, "bob", "bob-secret", bobOnLAN},
			{lan, "alice", "wrong", false},
			{all, "", "", false},
			{all, "bob", "bob-secret", true},
			{all, "bob", "wrong", false},
		} {
			if err := try(c.port, c.user, c.pw); (err == nil) != c.ok {
				t.Errorf("mosquitto %s: %q (password %q) on port %d: accepted=%v, want %v (%v)", m, c.user, c.pw, c.port, err == nil, c.ok, err)
			}
		}
	}
	check(false)
	if log := b.ReadLog(); strings.Contains(strings.ToLower(log), "deprecat") {
		t.Errorf("mosquitto %s logs a deprecation for what conf write wrote:\n%s", m, log)
	}
	if calls := write(",user=alice"); len(calls) != 0 {
		t.Errorf("second write: systemctl calls %q", calls)
	}

	// user= dropped: the file goes, and the broker does what conf write asked.
	calls := write("")
	if _, err := os.Lstat(filepath.Join(root, layout.PasswordFile+fmt.Sprintf(".%d", lan))); !os.IsNotExist(err) {
		t.Errorf("the listener's password file is still there (%v)", err)
	}
	full := confText() + "\nlog_dest file " + b.Log + "\nlog_type all\n"
	if err := os.WriteFile(b.Conf, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	switch {
	case cmp.Equal(calls, []string{"systemctl reload mosquitto"}):
		if err := b.Reload(); err != nil {
			t.Fatal(err)
		}
	case cmp.Equal(calls, []string{"systemctl restart mosquitto"}):
		b.Stop()
		b = m.Start(t, root, confText(), local, lan, all)
	default:
		t.Fatalf("users dropped: systemctl calls %q", calls)
	}
	for deadline := time.Now().Add(5 * time.Second); try(lan, "bob", "bob-secret") != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto %s: after %q bob is still refused on port %d\n%s", m, calls, lan, b.ReadLog())
		}
	}
	check(true)
	if calls := write(""); len(calls) != 0 {
		t.Errorf("rerun: systemctl calls %q", calls)
	}
}
