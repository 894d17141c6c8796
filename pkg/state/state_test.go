package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/system"
)

func TestRecordAndDrift(t *testing.T) {
	root := t.TempDir()
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sys := system.NewReal(root, system.WithRunner(&system.Recorder{}), system.WithClock(func() time.Time { return clock }))
	os.MkdirAll(filepath.Join(root, "etc/mosqprov"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/mosquitto"), 0o755)
	write := func(p, data string) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/mosquitto/passwd", "a:$7$...\n")
	write("etc/mosquitto/acl", "user a\ntopic a/#\n")
	paths := []string{"/etc/mosquitto/passwd", "/etc/mosquitto/acl", "/etc/mosquitto/missing"}

	if st, err := Load(sys); st != nil || err != nil {
		t.Fatalf("no state yet: %v %v", st, err)
	}
	if a, err := recorded(Record(sys, paths, "")); err != nil || a != system.Create {
		t.Fatalf("first record: %v %v", a, err)
	}
	fi1, _ := os.Stat(filepath.Join(root, File))
	// A later apply that changed nothing writes nothing (same bytes, same mtime).
	clock = clock.Add(time.Hour)
	if a, err := recorded(Record(sys, paths, "")); err != nil || a != system.Noop {
		t.Fatalf("second record: %v %v", a, err)
	}
	fi2, _ := os.Stat(filepath.Join(root, File))
	if !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Fatal("state.json rewritten without a change")
	}

	st, err := Load(sys)
	if err != nil || st.Applied != "2026-01-02T03:04:05Z" || len(st.Files) != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	if d := st.Drift(sys); len(d) != 0 {
		t.Fatalf("drift right after apply: %+v", d)
	}
	write("etc/mosquitto/acl", "user a\ntopic #\n")
	os.Remove(filepath.Join(root, "etc/mosquitto/passwd"))
	d := st.Drift(sys)
	if len(d) != 2 || d[0] != (Drifted{Path: "/etc/mosquitto/acl"}) || d[1] != (Drifted{Path: "/etc/mosquitto/passwd", Removed: true}) {
		t.Fatalf("%+v", d)
	}
}

func TestRecordKeepsBrokerVersion(t *testing.T) {
	root := t.TempDir()
	sys := system.NewReal(root, system.WithRunner(&system.Recorder{}))
	os.MkdirAll(filepath.Join(root, "etc/mosqprov"), 0o755)
	steps := []struct {
		broker string
		action system.Action
		want   string
	}{
		{"2.0.11", system.Create, "2.0.11"},
		{"", system.Noop, "2.0.11"},       // the package step didn't look: keep what we knew
		{"2.0.11", system.Noop, "2.0.11"}, // same version: nothing written
		{"2.1.2", system.Update, "2.1.2"}, // an upgrade is recorded
	}
	for i, s := range steps {
		a, err := recorded(Record(sys, nil, s.broker))
		if err != nil || a != s.action {
			t.Fatalf("step %d: %v %v, want %v", i, a, err, s.action)
		}
		st, err := Load(sys)
		if err != nil || st.Broker != s.want {
			t.Fatalf("step %d: broker %q (%v), want %q", i, st.Broker, err, s.want)
		}
	}
}

// recorded is the action of Record's one line for state.json; a result of
// another shape (more lines, another file, a need of the broker) is an error.
func recorded(res system.Result, err error) (system.Action, error) {
	if err != nil {
		return "", err
	}
	if len(res.Changes) != 1 || res.Changes[0].Path != File || res.Need != system.NeedNothing || len(res.Warnings) != 0 {
		return "", fmt.Errorf("result %+v: want one line for %s and no need", res, File)
	}
	return res.Changes[0].Action, nil
}
