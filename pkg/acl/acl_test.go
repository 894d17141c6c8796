package acl_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func TestValidateTopic(t *testing.T) {
	good := []string{"#", "+", "a", "a/b", "a/#", "a/+/c", "+/+/#", "/", "a//b", "$SYS/broker/#", "home/caf\u00e9", "with space/x", "%u/x"}
	for _, topic := range good {
		if err := acl.ValidateTopic(topic); err != nil {
			t.Errorf("ValidateTopic(%q) = %v", topic, err)
		}
	}
	bad := []string{"", "a#", "a/#/b", "#/a", "a/b#", "a+", "a/+b/c", "+a", "a\nuser admin", "a\rb", "a\x00b", "a\tb", "\xffa", " a", "a ", "a\u2028b", "a\x7f", strings.Repeat("a", 65536)}
	for _, topic := range bad {
		err := acl.ValidateTopic(topic)
		if !errs.IsInput(err) {
			t.Errorf("ValidateTopic(%q) = %v, want an input error", topic, err)
		} else if strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("ValidateTopic(%q): error is not one line: %q", topic, err)
		}
	}
	if err := acl.ValidateTopic(strings.Repeat("a", 65535)); err != nil {
		t.Errorf("65535-byte topic: %v", err)
	}
}

// TestRuleInjectionRejected: no user name or topic can add a line to the file.
func TestRuleInjectionRejected(t *testing.T) {
	cases := []acl.Rule{
		{Kind: acl.KindUser, User: "bob\ntopic readwrite #", Access: acl.AccessRead, Topic: "a"},
		{Kind: acl.KindUser, User: "bob\r", Access: acl.AccessRead, Topic: "a"},
		{Kind: acl.KindUser, User: "", Access: acl.AccessRead, Topic: "a"},
		{Kind: acl.KindUser, User: " bob", Access: acl.AccessRead, Topic: "a"},
		{Kind: acl.KindUser, User: "bob\x00", Access: acl.AccessRead, Topic: "a"},
		{Kind: acl.KindUser, User: "bob", Access: "readwrite #\ntopic", Topic: "a"},
		{Kind: acl.KindUser, User: "bob", Access: acl.AccessRead, Topic: "a\ntopic readwrite #"},
		{Kind: acl.KindAnonymous, User: "bob", Access: acl.AccessRead, Topic: "a"},
		{Kind: acl.KindPattern, Access: acl.AccessRead, Topic: "users/x%u/#"},
		{Kind: acl.KindPattern, Access: acl.AccessRead, Topic: "users/%c%u"},
		{Kind: "everyone", Access: acl.AccessRead, Topic: "a"},
	}
	for _, r := range cases {
		f := &acl.File{}
		if _, err := f.Set(r); !errs.IsInput(err) {
			t.Errorf("Set(%q) = %v, want an input error", r, err)
		}
		if len(f.Rules) != 0 {
			t.Errorf("Set(%q) kept the rule", r)
		}
	}
}

func TestSetRemoveSorted(t *testing.T) {
	f := &acl.File{}
	set := func(r acl.Rule, want bool) {
		t.Helper()
		changed, err := f.Set(r)
		if err != nil || changed != want {
			t.Fatalf("Set(%v) = %v, %v; want %v", r, changed, err, want)
		}
	}
	set(acl.Rule{Kind: acl.KindUser, User: "bob", Access: acl.AccessRead, Topic: "home/#"}, true)
	set(acl.Rule{Kind: acl.KindUser, User: "bob", Access: acl.AccessRead, Topic: "home/#"}, false)
	set(acl.Rule{Kind: acl.KindUser, User: "bob", Access: acl.AccessReadWrite, Topic: "home/#"}, true)
	set(acl.Rule{Kind: acl.KindUser, User: "alice", Access: acl.AccessDeny, Topic: "b"}, true)
	set(acl.Rule{Kind: acl.KindUser, User: "alice", Access: acl.AccessWrite, Topic: "a"}, true)
	set(acl.Rule{Kind: acl.KindPattern, Access: acl.AccessReadWrite, Topic: "users/%u/#"}, true)
	set(acl.Rule{Kind: acl.KindAnonymous, Access: acl.AccessRead, Topic: "public/#"}, true)
	var got []string
	for _, r := range f.Sorted() {
		got = append(got, r.String())
	}
	want := []string{"anonymous read public/#", "pattern readwrite users/%u/#", "user alice write a", "user alice deny b", "user bob readwrite home/#"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sorted (-want +got):\n%s", diff)
	}
	if n := f.Remove(acl.KindUser, "alice", ""); n != 2 {
		t.Errorf("removed %d of alice's rules, want 2", n)
	}
	if n := f.Remove(acl.KindUser, "bob", "nothing"); n != 0 {
		t.Errorf("removed %d for a missing topic", n)
	}
	if n := f.Remove(acl.KindPattern, "", "users/%u/#"); n != 1 {
		t.Errorf("removed %d patterns, want 1", n)
	}
}

func TestParseRenderRoundtrip(t *testing.T) {
	f := &acl.File{}
	for _, r := range []acl.Rule{
		{Kind: acl.KindUser, User: "blinds controller", Access: acl.AccessReadWrite, Topic: "home/blinds/#"},
		{Kind: acl.KindUser, User: "phone", Access: acl.AccessRead, Topic: "home/+/state"},
		{Kind: acl.KindUser, User: "phone", Access: acl.AccessDeny, Topic: "home/alarm/#"},
		{Kind: acl.KindPattern, Access: acl.AccessWrite, Topic: "devices/%c/status"},
		{Kind: acl.KindAnonymous, Access: acl.AccessRead, Topic: "public/with space"},
	} {
		if _, err := f.Set(r); err != nil {
			t.Fatal(err)
		}
	}
	data, err := acl.Render(f)
	if err != nil {
		t.Fatal(err)
	}
	back, err := acl.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.Sorted(), back.Sorted()); diff != "" {
		t.Errorf("Parse(Render(f)) (-want +got):\n%s", diff)
	}
	again, _ := acl.Render(back)
	if string(again) != string(data) {
		t.Errorf("render is not stable:\n%s\n---\n%s", data, again)
	}
}

// TestParseHandWritten reads a file written by hand the way the broker
// does: no access means readwrite, topic lines before any user line are
// anonymous, a repeated user section adds up, read + write is readwrite and
// deny wins.
func TestParseHandWritten(t *testing.T) {
	data := "# mine\ntopic read $SYS/#\n\nuser roger\ntopic foo/bar\ntopic read a\npattern write $SYS/broker/connection/%c/state\nuser sam\ntopic read x\nuser roger\ntopic write a\ntopic read d\ntopic deny d   \n"
	f, err := acl.Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range f.Sorted() {
		got = append(got, r.String())
	}
	want := []string{
		"anonymous read $SYS/#",
		"pattern write $SYS/broker/connection/%c/state",
		"user roger readwrite a",
		"user roger deny d",
		"user roger readwrite foo/bar",
		"user sam read x",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsed (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"topic nope a\n", "user\n", "acl x\n", "topic read a/#/b\n"} {
		if _, err := acl.Parse([]byte(bad)); !errs.IsInput(err) {
			t.Errorf("Parse(%q) = %v, want an input error", bad, err)
		}
	}
}

func TestUpdateIdempotentAndOwned(t *testing.T) {
	root := t.TempDir()
	sys := system.NewReal(root, system.WithRunner(&system.Recorder{}))
	p := "/etc/mosquitto/acl"
	add := func(f *acl.File) error {
		_, err := f.Set(acl.Rule{Kind: acl.KindUser, User: "alice", Access: acl.AccessReadWrite, Topic: "home/#"})
		return err
	}
	_, res, err := acl.Update(sys, p, add)
	if err != nil || res.Changes[0].Action != system.Create || res.Need != system.NeedReload {
		t.Fatalf("first: %+v err %v", res, err)
	}
	fi, _ := os.Stat(filepath.Join(root, p))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if info, _ := sys.Stat(p); os.Geteuid() == 0 {
		acct, err := sys.LookupUser("mosquitto")
		if err == nil && info.UID != acct.UID {
			t.Errorf("owner uid %d, want mosquitto's %d", info.UID, acct.UID)
		}
	}
	time.Sleep(10 * time.Millisecond)
	_, res, err = acl.Update(sys, p, add)
	if err != nil || res.Changes[0].Action != system.Noop || res.Need != system.NeedNothing {
		t.Fatalf("second: %+v err %v", res, err)
	}
	if fi2, _ := os.Stat(filepath.Join(root, p)); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("unchanged update touched the file")
	}
	// A rejected edit writes nothing.
	before, _ := os.ReadFile(filepath.Join(root, p))
	_, _, err = acl.Update(sys, p, func(f *acl.File) error {
		_, err := f.Set(acl.Rule{Kind: acl.KindUser, User: "bob", Access: acl.AccessRead, Topic: "a/#/b"})
		return err
	})
	if !errs.IsInput(err) {
		t.Fatalf("bad topic: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(root, p)); string(after) != string(before) {
		t.Error("a rejected rule changed the file")
	}
}

// BenchmarkUpdate10k adds one rule to a 10,000-rule file: lock, parse,
// validate, render, compare, write.
func BenchmarkUpdate10k(b *testing.B) {
	sys := system.NewReal(b.TempDir())
	p := "/etc/mosquitto/acl"
	if _, _, err := acl.Update(sys, p, func(f *acl.File) error {
		for i := range 10000 {
			if _, err := f.Set(acl.Rule{Kind: acl.KindUser, User: fmt.Sprintf("device-%04d", i/4), Access: acl.AccessReadWrite, Topic: fmt.Sprintf("home/device-%04d/%d/#", i/4, i%4)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if _, _, err := acl.Update(sys, p, func(f *acl.File) error {
			_, err := f.Set(acl.Rule{Kind: acl.KindUser, User: "phone", Access: acl.AccessRead, Topic: fmt.Sprintf("bench/%d", i%2)})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
