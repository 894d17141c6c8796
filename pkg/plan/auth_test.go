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
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// TestApplyPerListenerAuthRealBroker: anonymous clients on one loopback
// listener only, a user limited to one listener, every user on a third,
// written in the installed broker's own form (2.0: per_listener_settings;
// 2.1: password-file plugins and listener_allow_anonymous), checked with the
// real broker and mosquitto_pub, with no deprecation in the broker's log;
// a second apply changes nothing. Against each broker of
// brokertest.Versions: Debian 12's 2.0.11, trixie's 2.0.21, sid's 2.1.
func TestApplyPerListenerAuthRealBroker(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, testPerListenerAuth)
}

func testPerListenerAuth(t *testing.T, m brokertest.Mosquitto) {
	v, err := apt.ParseVersion(m.Version)
	if err != nil {
		t.Fatal(err)
	}
	// The target has m's dpkg database and plugins, and no state.json yet:
	// apply finds the version with dpkg, as on a Pi.
	root := brokerRoot(t, m)
	local, lan, all := brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)
	text := fmt.Sprintf(`listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1, allow_anonymous: true}
  - {type: mqtt, port: %d, bind: 127.0.0.1, users: [alice]}
  - {type: mqtt, port: %d, bind: 127.0.0.1}
users:
  - {name: alice, password_env: ALICE}
  - {name: bob, password_env: BOB}
acl:
  - {pattern: true, readwrite: ["#"]}
  - {anonymous: true, read: ["#"]}
package: {install: false}
service: {enable: false}
`, local, lan, all)
	s, err := spec.Parse("broker.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ALICE": "alice-secret", "BOB": "bob-secret"}
	o := Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	ctx := context.Background()
	res, err := Converge(ctx, dpkgSys(root), s, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
	confData, err := os.ReadFile(filepath.Join(root, layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	form21 := v.AtLeast(2, 1)
	for _, want := range map[bool][]string{
		false: {"per_listener_settings true\n", "allow_anonymous true\n", "password_file /etc/mosquitto/passwd." + fmt.Sprint(lan) + "\n"},
		true:  {"plugin_use passwd." + fmt.Sprint(lan) + "\n", "listener_allow_anonymous true\n", "plugin_opt_acl_file /etc/mosquitto/acl\n"},
	}[form21] {
		if !strings.Contains(string(confData), want) {
			t.Fatalf("mosquitto %s: want %q in\n%s", v, want, confData)
		}
	}
	for _, gone := range map[bool][]string{true: {"per_listener_settings", "\npassword_file /", "\nacl_file /", "\nallow_anonymous"}, false: {"plugin_", "listener_allow_anonymous"}}[form21] {
		if strings.Contains(string(confData), gone) {
			t.Fatalf("mosquitto %s: %q in\n%s", v, gone, confData)
		}
	}
	t.Logf("mosquitto %s, the configuration mosqprov wrote:\n%s", v, confData)
	conf := brokertest.Rooted(root, string(confData))
	b := m.Start(t, root, conf, local, lan, all)

	try := func(port int, user, pw string) error {
		return (brokertest.Client{Port: port, User: user, Password: pw}).Publish("t/auth", "x")
	}
	for _, c := range []struct {
		port     int
		user, pw string
		ok       bool
	}{
		{local, "", "", true},
		{local, "alice", "alice-secret", true},
		{local, "bob", "bob-secret", true},
		{lan, "", "", false},
		{lan, "alice", "alice-secret", true},
		{lan, "bob", "bob-secret", false},
		{lan, "alice", "wrong", false},
		{all, "", "", false},
		{all, "alice", "alice-secret", true},
		{all, "bob", "bob-secret", true},
		{all, "bob", "wrong", false},
	} {
		err := try(c.port, c.user, c.pw)
		if (err == nil) != c.ok {
			who := c.user
			if who == "" {
				who = "anonymous"
			}
			t.Errorf("mosquitto %s: %s on port %d (password %q): accepted=%v, want %v (%v)", v, who, c.port, c.pw, err == nil, c.ok, err)
		}
	}
	// 2.1 says what it deprecates while it reads its configuration, before
	// it opens its log file: on stderr (the journal, under systemd).
	if log := b.Output() + b.ReadLog(); strings.Contains(strings.ToLower(log), "deprecat") || strings.Contains(log, "Please replace") {
		t.Errorf("mosquitto %s logs a deprecation for what mosqprov wrote:\n%s", v, log)
	}

	// A second apply changes nothing and writes nothing.
	defer func() {
		// `user passwd alice` (passwd.Converge) rewrites the listener's file
		// too: after the reload the old password no longer opens it.
		pres, err := passwd.Converge(realSys(root), layout.PasswordFile, []passwd.Desired{{Name: "alice", Password: "alice-new-secret"}}, passwd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if pres.Need != system.NeedReload || len(pres.Changes) != 2 {
			t.Fatalf("user passwd: need %v, changes %+v", pres.Need, pres.Changes)
		}
		if err := b.Reload(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for try(lan, "alice", "alice-new-secret") != nil {
			if time.Now().After(deadline) {
				t.Fatalf("mosquitto %s: the new password is refused on the limited listener after the reload\n%s", v, b.ReadLog())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if try(lan, "alice", "alice-secret") == nil {
			t.Errorf("mosquitto %s: the old password still opens the limited listener", v)
		}
		if log := b.ReadLog(); !strings.Contains(log, "mosquitto version "+m.Version+" running") {
			t.Errorf("not the log of mosquitto %s:\n%s", m, log)
		} else if log += b.Output(); strings.Contains(strings.ToLower(log), "deprecat") || strings.Contains(log, "Please replace") {
			t.Errorf("mosquitto %s logs a deprecation after the reload:\n%s", v, log)
		}
	}()

	before := mtimes(t, root)
	sys2 := dpkgSys(root)
	res2, err := Converge(ctx, sys2, s, o)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || len(sys2.Changes()) != 0 || res2.Need != system.NeedNothing {
		t.Fatalf("second apply: changed=%v files=%v need=%v", res2.Changed, sys2.Changes(), res2.Need)
	}
	if after := mtimes(t, root); !maps.Equal(before, after) {
		t.Fatal("second apply touched files")
	}
}
