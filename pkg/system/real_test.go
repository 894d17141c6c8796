package system

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFileOnlyWhenDifferent(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	if _, err := s.EnsureDir("/etc/mosquitto", Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	act, err := s.WriteFile("/etc/mosquitto/passwd", []byte("a:b\n"), Attr{Mode: 0o600})
	if err != nil || act != Create {
		t.Fatalf("first write: %v %v", act, err)
	}
	host := filepath.Join(root, "etc/mosquitto/passwd")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(host, old, old)
	act, err = s.WriteFile("/etc/mosquitto/passwd", []byte("a:b\n"), Attr{Mode: 0o600})
	if err != nil || act != Noop {
		t.Fatalf("same write: %v %v", act, err)
	}
	fi, _ := os.Stat(host)
	if !fi.ModTime().Equal(old) {
		t.Fatal("an unchanged write touched the file")
	}
	act, err = s.WriteFile("/etc/mosquitto/passwd", []byte("a:b\n"), Attr{Mode: 0o640})
	if err != nil || act != Update {
		t.Fatalf("mode change: %v %v", act, err)
	}
	fi, _ = os.Stat(host)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(host))
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
	changes := s.Changes()
	if len(changes) != 2 || changes[1].Action != Create || changes[1].Before != nil {
		t.Fatalf("changes should remember the state before the first change: %+v", changes)
	}
}

func TestWriteFileFailsCleanly(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	_, err := s.WriteFile("/missing/dir/file", []byte("x"), Attr{Mode: 0o600})
	if err == nil || !strings.Contains(err.Error(), "missing/dir/file") {
		t.Fatalf("want an error naming the path, got %v", err)
	}
	_, err = s.WriteFile("/x", []byte("x"), Attr{Mode: 0o600, User: "no-such-user-mosqprov"})
	if err == nil {
		t.Fatal("unknown owner accepted")
	}
	if _, err := os.Stat(filepath.Join(root, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("file written despite the error")
	}
}

func TestDryRunRecordsAndReadsBack(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("old"), 0o600)
	d := NewDryRun(NewReal(root))
	act, err := d.WriteFile("/f", []byte("new"), Attr{Mode: 0o600})
	if err != nil || act != Update {
		t.Fatalf("%v %v", act, err)
	}
	if got, _ := d.ReadFile("/f"); string(got) != "new" {
		t.Fatalf("dry run should read its own pending write, got %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "f")); string(got) != "old" {
		t.Fatalf("dry run wrote the disk: %q", got)
	}
	if act, _ := d.WriteFile("/f", []byte("new"), Attr{Mode: 0o600}); act != Noop {
		t.Fatalf("second identical dry write: %v", act)
	}
	if _, err := d.Run(t.Context(), Cmd{Name: "false"}); err != nil {
		t.Fatal("a mutating command ran in dry run")
	}
	if len(d.Commands()) != 1 {
		t.Fatal("the skipped command was not recorded")
	}
}

func TestRestore(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "a"), []byte("before"), 0o640)
	s := NewReal(root)
	s.WriteFile("/a", []byte("after"), Attr{Mode: 0o600})
	s.WriteFile("/b", []byte("new"), Attr{Mode: 0o600})
	if err := Restore(s, s.Changes()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(root, "a"))
	fi, _ := os.Stat(filepath.Join(root, "a"))
	if string(got) != "before" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("a restored as %q %v", got, fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(root, "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a created file survived the restore")
	}
}

func TestLookupUnderRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nmosquitto:x:123:456::/var/lib/mosquitto:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("mosquitto:x:456:\n"), 0o644)
	s := NewReal(root)
	a, err := s.LookupUser("mosquitto")
	if err != nil || a.UID != 123 || a.GID != 456 {
		t.Fatalf("%+v %v", a, err)
	}
	if g, err := s.LookupGroup("mosquitto"); err != nil || g != 456 {
		t.Fatalf("%v %v", g, err)
	}
	if _, err := s.LookupUser("nobody-here"); err == nil || err.Error() != `no user or group "nobody-here" in `+filepath.Join(root, "etc/passwd") {
		t.Fatalf("missing user: %v", err)
	}
}

// An account found is looked up once a run; one not found is looked up
// again, since apt's postinst creates the broker's user during an apply.
func TestLookupKeepsWhatItFound(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	passwd, group := filepath.Join(root, "etc/passwd"), filepath.Join(root, "etc/group")
	os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\n"), 0o644)
	s := NewReal(root)
	if _, err := s.LookupUser("mosquitto"); err == nil {
		t.Fatal("found a user the file doesn't hold")
	}
	// The package is installed: the user and group now exist.
	os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\nmosquitto:x:123:456::/var/lib/mosquitto:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\nmosquitto:x:456:\n"), 0o644)
	if a, err := s.LookupUser("mosquitto"); err != nil || a.UID != 123 {
		t.Fatalf("after the install: %+v %v", a, err)
	}
	if g, err := s.LookupGroup("mosquitto"); err != nil || g != 456 {
		t.Fatalf("group after the install: %v %v", g, err)
	}
	// Found once, not read again: the files changed, the answers stay.
	os.WriteFile(passwd, []byte("mosquitto:x:999:999::/:/bin/false\n"), 0o644)
	os.WriteFile(group, []byte("mosquitto:x:999:\n"), 0o644)
	if a, err := s.LookupUser("mosquitto"); err != nil || a.UID != 123 {
		t.Fatalf("second lookup read the file again: %+v %v", a, err)
	}
	if g, err := s.LookupGroup("mosquitto"); err != nil || g != 456 {
		t.Fatalf("second group lookup read the file again: %v %v", g, err)
	}
}
