package system

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// withStepHook installs hook for the test's duration.
func withStepHook(t *testing.T, hook func(step string, tmp *os.File) error) {
	t.Helper()
	stepHook = hook
	t.Cleanup(func() { stepHook = nil })
}

// TestAtomicWriteOrder watches every step of a write: the temp file has its
// final owner and mode while still empty (before any data), is synced
// before the rename, the target holds the old bytes until the rename, and
// the folder is synced after it.
func TestAtomicWriteOrder(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "passwd")
	os.WriteFile(target, []byte("old\n"), 0o600)
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = 4321, 4322 // any ids will do for root
	}
	var steps []string
	withStepHook(t, func(step string, tmp *os.File) error {
		steps = append(steps, step)
		cur, _ := os.ReadFile(target)
		switch step {
		case "write":
			fi, err := tmp.Stat()
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Size() != 0 || fi.Mode().Perm() != 0o640 || (uid >= 0 && (int(st.Uid) != uid || int(st.Gid) != gid)) {
				t.Errorf("before the data: size %d mode %v owner %d:%d, want 0 bytes, 0640, %d:%d", fi.Size(), fi.Mode().Perm(), st.Uid, st.Gid, uid, gid)
			}
		case "rename":
			if string(cur) != "old\n" {
				t.Errorf("target changed before the rename: %q", cur)
			}
		case "syncdir":
			if string(cur) != "new\n" {
				t.Errorf("target after the rename: %q", cur)
			}
		}
		return nil
	})
	if err := atomicWrite(target, []byte("new\n"), 0o640, uid, gid); err != nil {
		t.Fatal(err)
	}
	want := []string{"mode", "write", "sync", "rename", "syncdir"}
	if uid >= 0 {
		want = append([]string{"owner"}, want...)
	}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
}

// TestAtomicWriteFailsCleanly makes each step fail in turn: the error names
// the target, no temp file is left, and the target keeps its old bytes
// unless the rename already happened.
func TestAtomicWriteFailsCleanly(t *testing.T) {
	for _, failAt := range []string{"owner", "mode", "write", "sync", "rename", "syncdir"} {
		t.Run(failAt, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "passwd")
			os.WriteFile(target, []byte("old\n"), 0o600)
			withStepHook(t, func(step string, _ *os.File) error {
				if step == failAt {
					return errors.New("injected")
				}
				return nil
			})
			err := atomicWrite(target, []byte("new\n"), 0o600, os.Getuid(), os.Getgid())
			if err == nil || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("err %v", err)
			}
			want := "old\n"
			if failAt == "syncdir" {
				want = "new\n"
			}
			if got, _ := os.ReadFile(target); string(got) != want {
				t.Fatalf("target %q, want %q", got, want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Fatalf("left behind: %v", entries)
			}
		})
	}
}

// TestWriteFileSweepsStaleTemps kills a real writer in the middle of a
// write (after its temp file holds the owner and mode, before the data),
// and checks that the next write removes the temp file it left, while a
// temp file a live writer is filling, and files that aren't ours, stay.
func TestWriteFileSweepsStaleTemps(t *testing.T) {
	if os.Getenv("SYSTEM_HELPER_ROOT") != "" {
		helperStuckWriter()
		return
	}
	root := t.TempDir()
	dir := filepath.Join(root, "etc")
	os.Mkdir(dir, 0o755)
	s := NewReal(root)

	live := startStuckWriter(t, root)
	dead := startStuckWriter(t, root)
	dead.Process.Kill()
	dead.Wait()
	others := []string{".passwd.tmp-x1", ".other.tmp-123", "passwd.tmp-123", ".passwd.tmp-"}
	for _, name := range others {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, ".passwd.tmp-[0-9]*"))
		return m
	}
	if n := len(temps()); n != 2 {
		t.Fatalf("%d temp files before the sweep, want 2 (live and killed writer)", n)
	}
	if _, err := s.WriteFile("/etc/passwd", []byte("a:b\n"), Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if left := temps(); len(left) != 1 {
		t.Fatalf("after the sweep: %v, want only the live writer's temp file", left)
	}
	for _, name := range others {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("swept a file that isn't ours: %s", name)
		}
	}
	live.Process.Kill()
	live.Wait()
	if _, err := s.WriteFile("/etc/passwd", []byte("a:c\n"), Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if left := temps(); len(left) != 0 {
		t.Fatalf("the killed writer's temp file survived: %v", left)
	}
}

// startStuckWriter runs this test binary as a writer of /etc/passwd under
// root that stops for good just before writing its data, and returns once
// its temp file exists.
func startStuckWriter(t *testing.T, root string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFileSweepsStaleTemps$")
	cmd.Env = append(os.Environ(), "SYSTEM_HELPER_ROOT="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("writer: %q %v", line, err)
	}
	return cmd
}

func helperStuckWriter() {
	stepHook = func(step string, _ *os.File) error {
		if step == "write" {
			fmt.Println("ready")
			select {} // killed here
		}
		return nil
	}
	_, err := NewReal(os.Getenv("SYSTEM_HELPER_ROOT")).WriteFile("/etc/passwd", []byte("x"), Attr{Mode: 0o600})
	fmt.Fprintln(os.Stderr, "writer finished:", err)
	os.Exit(1)
}

// TestOwnerNeedsRoot: a process that isn't root can't give a file to
// another user; it says so before writing anything, in a dry run too.
func TestOwnerNeedsRoot(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	s.euid = 4242 // as an unprivileged user would run
	attr := Attr{Mode: 0o600, User: "root"}
	for name, sys := range map[string]System{"real": s, "dry-run": NewDryRun(s)} {
		_, err := sys.WriteFile("/f", []byte("x"), attr)
		if err == nil || !strings.Contains(err.Error(), "write /f: owner root: only root can give a file to another user") {
			t.Errorf("%s write: %v", name, err)
		}
		_, err = sys.EnsureDir("/d", Attr{Mode: 0o755, User: "root"})
		if err == nil || !strings.Contains(err.Error(), "only root") {
			t.Errorf("%s folder: %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("written despite the error: %v", entries)
	}
	// The caller's own files need no privilege.
	if _, err := s.WriteFile("/f", []byte("x"), Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
}

// TestDryRunFolders: a dry run creates missing parents as Real does, sees
// its pending folders and files in Stat and ReadDir, refuses a write where
// the real one would fail, and touches nothing.
func TestDryRunFolders(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "file"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "gone"), []byte("x"), 0o644)
	d := NewDryRun(NewReal(root))
	if act, err := d.EnsureDir("/a/b/c", Attr{Mode: 0o750}); err != nil || act != Create {
		t.Fatalf("ensure: %v %v", act, err)
	}
	for p, mode := range map[string]fs.FileMode{"/a": 0o755, "/a/b": 0o755, "/a/b/c": 0o750} {
		if fi, err := d.Stat(p); err != nil || !fi.IsDir || fi.Mode != mode {
			t.Errorf("stat %s: %+v %v", p, fi, err)
		}
	}
	if act, _ := d.EnsureDir("/a/b/c", Attr{Mode: 0o750}); act != Noop {
		t.Errorf("same folder again: %v", act)
	}
	if act, _ := d.EnsureDir("/a/b/c", Attr{Mode: 0o700}); act != Update {
		t.Errorf("narrower mode: %v", act)
	}
	if act, err := d.WriteFile("/a/b/c/f", []byte("data"), Attr{Mode: 0o600}); err != nil || act != Create {
		t.Fatalf("write into a pending folder: %v %v", act, err)
	}
	if _, err := d.WriteFile("/nowhere/f", []byte("x"), Attr{Mode: 0o600}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write without a folder: %v", err)
	}
	os.Mkdir(filepath.Join(root, "real"), 0o755)
	os.Symlink("real", filepath.Join(root, "link"))
	if _, err := d.WriteFile("/link/f", []byte("x"), Attr{Mode: 0o600}); err != nil {
		t.Errorf("write through a symlinked folder: %v", err)
	}
	if _, err := d.EnsureDir("/file", Attr{Mode: 0o755}); err == nil || !strings.Contains(err.Error(), "a file is in the way") {
		t.Errorf("folder over a file: %v", err)
	}
	if fi, err := d.Stat("/a/b/c/f"); err != nil || fi.Size != 4 || fi.Mode != 0o600 {
		t.Errorf("stat pending file: %+v %v", fi, err)
	}
	d.Remove("/gone")
	names := func(p string) []string {
		entries, err := d.ReadDir(p)
		if err != nil {
			t.Fatalf("readdir %s: %v", p, err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	if got := names("/a/b/c"); !slices.Equal(got, []string{"f"}) {
		t.Errorf("pending folder lists %v", got)
	}
	if got := names("/"); !slices.Equal(got, []string{"a", "file", "link", "real"}) {
		t.Errorf("root lists %v", got)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 4 {
		t.Fatalf("the dry run changed the disk: %v", entries)
	}
	if changes := d.Changes(); len(changes) != 3 || changes[0].Action != Create || changes[2].Action != Delete {
		t.Fatalf("changes %+v", changes)
	}
}

// TestVerboseLog: --verbose describes writes, folders and commands, with
// host paths under a root, and never file contents.
func TestVerboseLog(t *testing.T) {
	root := t.TempDir()
	var lines []string
	s := NewReal(root, WithRunner(&Recorder{}))
	s.SetLog(func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	s.EnsureDir("/etc", Attr{Mode: 0o755})
	s.WriteFile("/etc/passwd", []byte("secret-content"), Attr{Mode: 0o600})
	s.WriteFile("/etc/passwd", []byte("secret-content"), Attr{Mode: 0o600})
	NewDryRun(s).Run(t.Context(), Cmd{Name: "systemctl", Args: []string{"reload", "mosquitto"}})
	log := strings.Join(lines, "\n")
	for _, want := range []string{
		"folder /etc (at " + root + "/etc): create (caller 0755)",
		"file /etc/passwd (at " + root + "/etc/passwd): create (14 bytes, caller 0600)",
		"file /etc/passwd (at " + root + "/etc/passwd): noop",
		"run (skipped, dry run): systemctl reload mosquitto",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "secret-content") {
		t.Fatal("file content in the log")
	}
}

// TestConcurrentWritersSurviveSweeps: writers of one target that don't take
// Lock (each sweeping the others' temp files) all succeed, and no temp
// file is left: a sweep never takes a live writer's file.
func TestConcurrentWritersSurviveSweeps(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	errc := make(chan error, 8*25)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				data := []byte(fmt.Sprintf("writer %d write %d\n", w, i))
				if _, err := s.WriteFile("/target", data, Attr{Mode: 0o600}); err != nil {
					errc <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}
