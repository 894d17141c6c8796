package acl_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Throwaway test credentials.
var users = map[string]string{"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

// TestRulesAgainstRealBroker writes an ACL file and a configuration with
// mosqprov, starts the real broker and watches which messages the real
// clients deliver: grants, a deny that wins over a grant, a pattern with
// %u, anonymous rules, a user without rules, and a change picked up on
// reload (SIGHUP) without a restart.
func TestRulesAgainstRealBroker(t *testing.T) {
	brokertest.Require(t)
	dir := brokertest.Dir(t)
	sys := system.NewReal("/")
	// The password file as `user add` writes it (pkg/passwd), owned by the
	// broker's user.
	pw := filepath.Join(dir, "passwd")
	var want []passwd.Desired
	for _, u := range []string{"alice", "bob", "carol"} {
		want = append(want, passwd.Desired{Name: u, Password: users[u]})
	}
	if _, err := passwd.Converge(sys, pw, want, passwd.Options{}); err != nil {
		t.Fatal(err)
	}

	aclPath := filepath.Join(dir, "acl")
	rules := []acl.Rule{
		{Kind: acl.KindUser, User: "alice", Access: acl.AccessReadWrite, Topic: "home/#"},
		{Kind: acl.KindUser, User: "alice", Access: acl.AccessDeny, Topic: "home/secret"},
		{Kind: acl.KindUser, User: "alice", Access: acl.AccessWrite, Topic: "public/#"},
		{Kind: acl.KindUser, User: "bob", Access: acl.AccessRead, Topic: "home/+"},
		{Kind: acl.KindPattern, Access: acl.AccessReadWrite, Topic: "users/%u/#"},
		{Kind: acl.KindPattern, Access: acl.AccessWrite, Topic: "devices/%c/#"},
		{Kind: acl.KindUser, User: "alice", Access: acl.AccessRead, Topic: "devices/#"},
		{Kind: acl.KindUser, User: "alice", Access: acl.AccessReadWrite, Topic: "room 1/#"},
		{Kind: acl.KindAnonymous, Access: acl.AccessRead, Topic: "public/#"},
	}
	_, res, err := acl.Update(sys, aclPath, func(f *acl.File) error {
		for _, r := range rules {
			if _, err := f.Set(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !res.Changes[0].Changed || res.Need != system.NeedReload {
		t.Fatalf("write ACL: %+v err %v", res, err)
	}

	port := brokertest.FreePort(t)
	cfg := conf.Config{AllowAnonymous: true, PasswordFile: pw, ACLFile: aclPath,
		Listeners: []conf.Listener{{Type: conf.MQTT, Port: port, Bind: "127.0.0.1"}}}
	data, err := conf.Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := brokertest.Start(t, dir, string(data), port)

	c := func(user string) brokertest.Client {
		return brokertest.Client{Port: port, User: user, Password: users[user]}
	}
	anon := brokertest.Client{Port: port}
	// carol connecting with client id devA.
	devA := c("carol")
	devA.Extra = []string{"-i", "devA"}
	cases := []struct {
		name     string
		sub, pub brokertest.Client
		topic    string
		want     bool
	}{
		{"alice to herself", c("alice"), c("alice"), "home/kitchen", true},
		{"alice to bob, who may read", c("bob"), c("alice"), "home/kitchen", true},
		{"bob may not write", c("alice"), c("bob"), "home/kitchen", false},
		{"bob's + is one level only", c("bob"), c("alice"), "home/kitchen/light", false},
		{"deny wins over alice's home/#", c("alice"), c("alice"), "home/secret", false},
		{"pattern %u: alice's own tree", c("alice"), c("alice"), "users/alice/x", true},
		{"pattern %u: not bob's tree", c("bob"), c("alice"), "users/bob/x", false},
		{"anonymous reads public", anon, c("alice"), "public/news", true},
		{"anonymous may not write", anon, anon, "public/news", false},
		{"carol has no rule", c("carol"), c("carol"), "home/kitchen", false},
		{"carol has her pattern tree", c("carol"), c("carol"), "users/carol/x", true},
		{"pattern %c: devA writes its own tree", c("alice"), devA, "devices/devA/state", true},
		{"pattern %c: devA not another's", c("alice"), devA, "devices/devB/state", false},
		{"a topic with a blank is one topic", c("alice"), c("alice"), "room 1/lamp", true},
		{"and not its first word", c("alice"), c("alice"), "room/lamp", false},
	}
	for _, tc := range cases {
		got, err := brokertest.Roundtrip(tc.sub, tc.pub, tc.topic, "m")
		if err != nil {
			t.Fatalf("%s: %v\nlog:\n%s", tc.name, err, b.ReadLog())
		}
		if got != tc.want {
			t.Errorf("%s: delivered=%v, want %v", tc.name, got, tc.want)
		}
	}

	// A new rule reaches the running broker on SIGHUP.
	_, res, err = acl.Update(sys, aclPath, func(f *acl.File) error {
		_, err := f.Set(acl.Rule{Kind: acl.KindUser, User: "bob", Access: acl.AccessReadWrite, Topic: "home/+"})
		return err
	})
	if err != nil || !res.Changes[0].Changed || res.Need != system.NeedReload {
		t.Fatalf("update ACL: %+v err %v", res, err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got, err := brokertest.Roundtrip(c("alice"), c("bob"), "home/kitchen", "after reload"); err != nil || !got {
		t.Errorf("after reload bob may write: delivered=%v err=%v\nlog:\n%s", got, err, b.ReadLog())
	}
}
