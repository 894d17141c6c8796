package plan

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func parseSpec(t *testing.T, text string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse("broker.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestApplyDropListenerUsersRealBroker: a listener limited to alice, then
// the same listener with users: dropped. The plan shows the removal of its
// password file and the broker's reload or restart; apply removes it (and
// only it: a symlink and a file mosqprov did not write, named alike, stay),
// the broker, given what apply says it needs, lets bob in there; a second
// apply changes nothing. Against each broker of brokertest.Versions.
func TestApplyDropListenerUsersRealBroker(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, testDropListenerUsers)
}

func testDropListenerUsers(t *testing.T, m brokertest.Mosquitto) {
	v, err := apt.ParseVersion(m.Version)
	if err != nil {
		t.Fatal(err)
	}
	// The target has m's dpkg database and plugins, and no state.json yet:
	// apply finds the version with dpkg, as on a Pi.
	root := brokerRoot(t, m)
	local, lan := brokertest.FreePort(t), brokertest.FreePort(t)
	specText := func(users string) string {
		return fmt.Sprintf(`listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1, allow_anonymous: true}
  - {type: mqtt, port: %d, bind: 127.0.0.1%s}
users:
  - {name: alice, password_env: ALICE}
  - {name: bob, password_env: BOB}
package: {install: false}
service: {enable: false}
`, local, lan, users)
	}
	env := map[string]string{"ALICE": "alice-secret", "BOB": "bob-secret"}
	o := Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	ctx := context.Background()
	if _, err := Converge(ctx, dpkgSys(root), parseSpec(t, specText(", users: [alice]")), o); err != nil {
		t.Fatal(err)
	}
	limited := conf.ListenerPasswordFile(layout.PasswordFile, lan)
	if _, err := os.Stat(filepath.Join(root, limited)); err != nil {
		t.Fatal(err)
	}
	// The installed broker's own form, from the version dpkg gave.
	form := map[bool]string{false: "per_listener_settings true\n", true: "plugin_use passwd." + fmt.Sprint(lan) + "\n"}[v.AtLeast(2, 1)]
	if data, _ := os.ReadFile(filepath.Join(root, layout.DropIn)); !strings.Contains(string(data), form) {
		t.Fatalf("mosquitto %s: the configuration is not in its form (%q):\n%s", v, form, data)
	}
	// Look-alikes that are not mosqprov's: a file without its marker, and a
	// symlink to a file with it.
	notOurs := filepath.Join(root, layout.PasswordFile+".7777")
	os.WriteFile(notOurs, []byte("carol:$7$xyz\n"), 0o600)
	marked, _ := os.ReadFile(filepath.Join(root, limited))
	target := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(target, marked, 0o600)
	link := filepath.Join(root, layout.PasswordFile+".6666")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}

	confText := func() string {
		data, err := os.ReadFile(filepath.Join(root, layout.DropIn))
		if err != nil {
			t.Fatal(err)
		}
		return brokertest.Rooted(root, string(data))
	}
	b := m.Start(t, root, confText(), local, lan)
	try := func(user, pw string) error {
		return (brokertest.Client{Port: lan, User: user, Password: pw}).Publish("t/auth", "x")
	}
	if try("bob", "bob-secret") == nil {
		t.Fatalf("mosquitto %s: bob logs in on the listener limited to alice", v)
	}

	// users: dropped. The plan says what apply will do, and writes nothing.
	s2 := parseSpec(t, specText(""))
	before := mtimes(t, root)
	dry := system.NewDryRun(dpkgSys(root))
	plan, err := Converge(ctx, dry, s2, o)
	if err != nil {
		t.Fatal(err)
	}
	removal := func(r *Result) bool {
		for _, c := range r.Changes() {
			if c.Path == limited && c.Action == system.Delete {
				return true
			}
		}
		return false
	}
	if !removal(plan) || plan.Summary.Remove != 1 {
		t.Errorf("plan: no removal of %s (summary %+v): %+v", limited, plan.Summary, plan.Changes())
	}
	if after := mtimes(t, root); !maps.Equal(before, after) {
		t.Fatal("plan touched files")
	}

	res, err := Converge(ctx, dpkgSys(root), s2, o)
	if err != nil {
		t.Fatal(err)
	}
	if !removal(res) || res.Need != plan.Need || res.Summary != plan.Summary {
		t.Errorf("apply: removal=%v need %v (plan %v), summary %+v (plan %+v)", removal(res), res.Need, plan.Need, res.Summary, plan.Summary)
	}
	if _, err := os.Lstat(filepath.Join(root, limited)); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", limited, err)
	}
	if _, err := os.Stat(notOurs); err != nil {
		t.Errorf("a file mosqprov did not write was removed: %v", err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("a symlink was removed: %v", err)
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("a symlink's target was removed: %v", err)
	}
	t.Logf("mosquitto %s: apply needs %v; the configuration now:\n%s", v, res.Need, confText())

	// The broker, given exactly what apply asked for, drops the restriction.
	full := confText() + "\nlog_dest file " + b.Log + "\nlog_type all\n"
	if err := os.WriteFile(b.Conf, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	switch res.Need {
	case system.NeedReload:
		if err := b.Reload(); err != nil {
			t.Fatal(err)
		}
	case system.NeedRestart:
		b.Stop()
		b = m.Start(t, root, confText(), local, lan)
	default:
		t.Fatalf("apply needs %v of the broker after changing its configuration", res.Need)
	}
	deadline := time.Now().Add(5 * time.Second)
	for try("bob", "bob-secret") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto %s: after the %v, bob is still refused on the listener that no longer limits its users\n%s", v, res.Need, b.ReadLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []struct {
		user, pw string
		ok       bool
	}{{"alice", "alice-secret", true}, {"bob", "wrong", false}, {"", "", false}} {
		if err := try(c.user, c.pw); (err == nil) != c.ok {
			t.Errorf("mosquitto %s: %q with %q on port %d: accepted=%v, want %v", v, c.user, c.pw, lan, err == nil, c.ok)
		}
	}

	// A second apply changes nothing.
	before = mtimes(t, root)
	sys3 := dpkgSys(root)
	res3, err := Converge(ctx, sys3, s2, o)
	if err != nil {
		t.Fatal(err)
	}
	if res3.Changed || len(sys3.Changes()) != 0 || res3.Need != system.NeedNothing {
		t.Fatalf("second apply: changed=%v files=%v need=%v", res3.Changed, sys3.Changes(), res3.Need)
	}
	if after := mtimes(t, root); !maps.Equal(before, after) {
		t.Fatal("second apply touched files")
	}
}

// A listener that is gone takes its password file with it, also when the
// configuration stops being per listener at all.
func TestApplyRemovedListenerLeavesNoPasswordFile(t *testing.T) {
	root := newRoot(t)
	text := `listeners:
  - {type: mqtt, port: 1883, bind: 127.0.0.1}
  - {type: mqtt, port: 1884, bind: 127.0.0.1, users: [alice]}
users:
  - {name: alice, password_env: ALICE}
package: {install: false}
service: {enable: false}
`
	o := Options{LookupEnv: func(k string) (string, bool) { return "alice-secret", true }}
	ctx := context.Background()
	if _, err := Converge(ctx, realSys(root), parseSpec(t, text), o); err != nil {
		t.Fatal(err)
	}
	limited := filepath.Join(root, conf.ListenerPasswordFile(layout.PasswordFile, 1884))
	if _, err := os.Stat(limited); err != nil {
		t.Fatal(err)
	}
	gone := strings.Replace(text, "  - {type: mqtt, port: 1884, bind: 127.0.0.1, users: [alice]}\n", "", 1)
	res, err := Converge(ctx, realSys(root), parseSpec(t, gone), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(limited); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", limited, err)
	}
	if res.Need != system.NeedRestart {
		t.Errorf("a listener removed needs a restart, apply says %v", res.Need)
	}
	if data, _ := os.ReadFile(filepath.Join(root, layout.DropIn)); strings.Contains(string(data), "per_listener_settings true") {
		t.Errorf("the configuration is still per listener:\n%s", data)
	}
	sys := realSys(root)
	if res, err := Converge(ctx, sys, parseSpec(t, gone), o); err != nil || res.Changed || len(sys.Changes()) > 0 {
		t.Errorf("second apply: %v changed=%v %v", err, res.Changed, sys.Changes())
	}
}
