package passwd

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

const target = "/etc/mosquitto/passwd"

func newSys(t *testing.T) (*system.Real, string) {
	t.Helper()
	root := t.TempDir()
	return system.NewReal(root, system.WithRunner(&system.Recorder{})), filepath.Join(root, target)
}

func mustConverge(t *testing.T, sys system.System, want []Desired, opts Options) Result {
	t.Helper()
	res, err := Converge(sys, target, want, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func statuses(r Result) string {
	var s []string
	for _, u := range r.Users {
		s = append(s, u.Name+"="+string(u.Status))
	}
	return strings.Join(s, " ")
}

// backdate sets path's mtime an hour back so a rewrite would show.
func backdate(t *testing.T, path string) time.Time {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return old
}

func assertUntouched(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Fatalf("file changed:\n%s", got)
	}
	fi, _ := os.Stat(path)
	if !fi.ModTime().Equal(mtime) {
		t.Fatalf("file rewritten: mtime %v, want %v", fi.ModTime(), mtime)
	}
}

func TestConvergeLifecycle(t *testing.T) {
	sys, host := newSys(t)
	res := mustConverge(t, sys, []Desired{{Name: "alice", Password: "pw1"}}, Options{})
	if res.Action != system.Create || statuses(res) != "alice=added" || res.Need != system.NeedReload {
		t.Fatalf("add: %+v", res)
	}
	data, _ := os.ReadFile(host)
	if !strings.HasPrefix(string(data), "alice:$7$1000$") || strings.Count(string(data), "\n") != 1 {
		t.Fatalf("file: %q", data)
	}
	if fi, _ := os.Stat(host); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}

	// Same password again: the stored hash verifies, nothing is written.
	mtime := backdate(t, host)
	res = mustConverge(t, sys, []Desired{{Name: "alice", Password: "pw1"}}, Options{})
	if res.Action != system.Noop || statuses(res) != "alice=unchanged" || res.Need != system.NeedNothing {
		t.Fatalf("again: %+v", res)
	}
	if res.Changes[0].Changed || res.Changes[0].Detail != "alice unchanged" {
		t.Fatalf("change %+v", res.Changes[0])
	}
	assertUntouched(t, host, data, mtime)

	// A new password: a new hash.
	res = mustConverge(t, sys, []Desired{{Name: "alice", Password: "pw2"}, {Name: "bob", Password: "pw3"}}, Options{})
	if res.Action != system.Update || statuses(res) != "alice=updated bob=added" {
		t.Fatalf("update: %+v", res)
	}
	f := readParsed(t, host)
	if l, _ := f.Lookup("alice"); !verify(l.Hash, "pw2") || verify(l.Hash, "pw1") {
		t.Fatal("alice's new password does not verify")
	}
	if f.Lines[0].Name != "alice" || f.Lines[1].Name != "bob" {
		t.Fatal("alice did not keep her place")
	}

	// Remove, and remove again.
	res = mustConverge(t, sys, nil, Options{Remove: []string{"alice"}})
	if res.Action != system.Update || statuses(res) != "alice=removed bob=unmanaged" {
		t.Fatalf("rm: %+v", res)
	}
	data, _ = os.ReadFile(host)
	mtime = backdate(t, host)
	res = mustConverge(t, sys, nil, Options{Remove: []string{"alice"}})
	if res.Action != system.Noop || statuses(res) != "alice=absent bob=unmanaged" {
		t.Fatalf("rm again: %+v", res)
	}
	assertUntouched(t, host, data, mtime)
}

func readParsed(t *testing.T, host string) *File {
	t.Helper()
	data, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func verify(hash, pw string) bool {
	h, err := ParseHash(hash)
	return err == nil && h.Verify(pw)
}

func seed(t *testing.T, host string, data []byte, mode fs.FileMode) {
	t.Helper()
	os.MkdirAll(filepath.Dir(host), 0o755)
	if err := os.WriteFile(host, data, mode); err != nil {
		t.Fatal(err)
	}
}

func TestConvergeKeepsForeignLines(t *testing.T) {
	sys, host := newSys(t)
	messy := readFixture(t, "messy.passwd")
	seed(t, host, messy, 0o600)
	pws := fixturePasswords(t)
	res := mustConverge(t, sys, []Desired{{Name: "alice", Password: "new"}, {Name: "newbie", Password: "nb"}}, Options{})
	if statuses(res) != "alice=updated newbie=added bob=unmanaged plain=unmanaged crypt=unmanaged # indented=unmanaged nohash=unmanaged carol=unmanaged old=unmanaged last=unmanaged" {
		t.Fatalf("statuses: %s", statuses(res))
	}
	got, _ := os.ReadFile(host)
	oldLines := strings.SplitAfter(string(messy), "\n")
	newLines := strings.SplitAfter(strings.TrimSuffix(string(got), "\n"), "\n")
	newLines[len(newLines)-1] += "\n"
	if len(newLines) != len(oldLines)+1 {
		t.Fatalf("%d lines, want %d:\n%s", len(newLines), len(oldLines)+1, got)
	}
	for i, l := range oldLines {
		switch {
		case i == 3:
			if !strings.HasPrefix(newLines[i], "alice:$7$1000$") {
				t.Errorf("line 4: %q", newLines[i])
			}
		case i == len(oldLines)-1:
			// the last line had no newline; one is added before appending
			if newLines[i] != l+"\n" {
				t.Errorf("last line: %q", newLines[i])
			}
		case newLines[i] != l:
			t.Errorf("line %d changed: %q -> %q", i+1, l, newLines[i])
		}
	}
	if !strings.HasPrefix(newLines[len(newLines)-1], "newbie:$7$") {
		t.Errorf("appended: %q", newLines[len(newLines)-1])
	}
	// The untouched users still verify with their fixture passwords.
	f := readParsed(t, host)
	for _, n := range []string{"bob", "carol"} {
		l, _ := f.Lookup(n)
		if !verify(l.Hash, pws[n]) {
			t.Errorf("%s no longer verifies", n)
		}
	}
	// Findings on the result: the messy lines are still reported.
	kinds := map[FindingKind]int{}
	for _, fd := range res.Findings {
		kinds[fd.Kind]++
	}
	if kinds[Crypt] != 1 || kinds[Plaintext] != 1 || kinds[Duplicate] != 1 {
		t.Errorf("findings %v", res.Findings)
	}
}

func TestConvergeMergesDuplicates(t *testing.T) {
	sys, host := newSys(t)
	seed(t, host, readFixture(t, "messy.passwd"), 0o600)
	// carol is on lines 11 ($7$) and 12 ($6$), both with password "x".
	res := mustConverge(t, sys, []Desired{{Name: "carol", Password: "x"}}, Options{})
	if res.Users[0].Status != Updated || res.Users[0].Detail != "duplicate lines merged" {
		t.Fatalf("%+v", res.Users[0])
	}
	f := readParsed(t, host)
	n := 0
	for _, l := range f.Entries() {
		if l.Name == "carol" {
			n++
			if !strings.HasPrefix(l.Hash, "$6$") {
				t.Errorf("kept %q, want the line the broker uses (the last, $6$)", l.Hash)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d carol lines", n)
	}
	res = mustConverge(t, sys, []Desired{{Name: "carol", Password: "x"}}, Options{})
	if res.Action != system.Noop {
		t.Fatalf("second run: %+v", res)
	}
}

func TestConvergeHashOptions(t *testing.T) {
	sys, host := newSys(t)
	seed(t, host, readFixture(t, "mosquitto_passwd-pbkdf2.passwd"), 0o600)
	pw := fixturePasswords(t)["alice"]
	for _, tc := range []struct {
		opts   Options
		status Status
		prefix string
	}{
		{Options{}, Unchanged, "$7$101$"},                // verifies: kept
		{Options{Iterations: 101}, Unchanged, "$7$101$"}, // same count asked
		{Options{Iterations: 1000}, Updated, "$7$1000$"}, // upgrade asked
		{Options{}, Unchanged, "$7$1000$"},               // kept again
		{Options{Algo: SHA512}, Updated, "$6$"},          // other type asked
		{Options{Algo: PBKDF2, Iterations: 5}, Updated, "$7$5$"},
	} {
		res := mustConverge(t, sys, []Desired{{Name: "alice", Password: pw}}, tc.opts)
		l, _ := readParsed(t, host).Lookup("alice")
		if res.Users[0].Status != tc.status || !strings.HasPrefix(l.Hash, tc.prefix) || !verify(l.Hash, pw) {
			t.Fatalf("%+v: %s %s", tc.opts, res.Users[0].Status, l.Hash)
		}
	}
}

func TestConvergeWithHash(t *testing.T) {
	sys, host := newSys(t)
	f, _ := Parse(readFixture(t, "mosquitto_passwd-sha512.passwd"))
	hash := f.Entries()[0].Hash
	res := mustConverge(t, sys, []Desired{{Name: "alice", Hash: hash}}, Options{})
	if statuses(res) != "alice=added" {
		t.Fatal(statuses(res))
	}
	if data, _ := os.ReadFile(host); string(data) != "alice:"+hash+"\n" {
		t.Fatalf("%q", data)
	}
	res = mustConverge(t, sys, []Desired{{Name: "alice", Hash: hash}}, Options{})
	if res.Action != system.Noop || statuses(res) != "alice=unchanged" {
		t.Fatal(statuses(res))
	}
}

// TestConvergeBadInputChangesNothing: every bad input is a one-line input
// error and the file stays byte for byte, mtime and all.
func TestConvergeBadInputChangesNothing(t *testing.T) {
	sys, host := newSys(t)
	messy := readFixture(t, "messy.passwd")
	seed(t, host, messy, 0o600)
	mtime := backdate(t, host)
	crypt := strings.TrimSpace(strings.SplitN(string(readFixture(t, "crypt-sha512.passwd")), "crypt:", 2)[1])
	for _, tc := range []struct {
		want []Desired
		opts Options
		msg  string
	}{
		{[]Desired{{Name: "", Password: "x"}}, Options{}, "username: empty"},
		{[]Desired{{Name: "a:b", Password: "x"}}, Options{}, "':'"},
		{[]Desired{{Name: "a\nb", Password: "x"}}, Options{}, "control"},
		{[]Desired{{Name: " a", Password: "x"}}, Options{}, "blank"},
		{[]Desired{{Name: "\xff", Password: "x"}}, Options{}, "UTF-8"},
		{[]Desired{{Name: strings.Repeat("n", 65536), Password: "x"}}, Options{}, "65536"},
		{[]Desired{{Name: "ok", Password: ""}}, Options{}, "password: empty"},
		{[]Desired{{Name: "ok", Password: "a\nb"}}, Options{}, "line break"},
		{[]Desired{{Name: "ok", Hash: crypt}}, Options{}, "crypt(3)"},
		{[]Desired{{Name: "ok", Hash: "plain"}}, Options{}, "plaintext"},
		{[]Desired{{Name: "ok", Password: "x", Hash: crypt}}, Options{}, "not both"},
		{[]Desired{{Name: "ok", Password: "x"}, {Name: "ok", Password: "y"}}, Options{}, "twice"},
		{[]Desired{{Name: "ok", Password: "x"}}, Options{Remove: []string{"ok"}}, "both wanted and removed"},
		{nil, Options{Remove: []string{"a:b"}}, "':'"},
		{[]Desired{{Name: "ok", Password: "x"}}, Options{Iterations: -1}, "--iterations"},
		{[]Desired{{Name: "ok", Password: "x"}}, Options{Algo: "md5"}, "--hash"},
		// A valid user after a bad one: nothing at all is written.
		{[]Desired{{Name: "fine", Password: "x"}, {Name: "bad:", Password: "x"}}, Options{}, "':'"},
	} {
		_, err := Converge(sys, target, tc.want, tc.opts)
		if err == nil || !errs.IsInput(err) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%.40q %+v: err %v, want a one-line input error with %q", tc.want, tc.opts, err, tc.msg)
		}
		assertUntouched(t, host, messy, mtime)
	}
	if len(sys.Changes()) != 0 {
		t.Fatalf("changes recorded: %v", sys.Changes())
	}
}

func TestConvergeGarbledFile(t *testing.T) {
	sys, host := newSys(t)
	bad := []byte("alice:x\n\x00\x01\x02binary\n")
	seed(t, host, bad, 0o600)
	mtime := backdate(t, host)
	_, err := Converge(sys, target, []Desired{{Name: "bob", Password: "x"}}, Options{})
	if !errs.IsInput(err) || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("err %v", err)
	}
	assertUntouched(t, host, bad, mtime)
}

func TestConvergeUnreadableFile(t *testing.T) {
	sys, host := newSys(t)
	os.MkdirAll(host, 0o755) // a folder where the file should be
	_, err := Converge(sys, target, []Desired{{Name: "bob", Password: "x"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "password file") {
		t.Fatalf("err %v", err)
	}
}

func TestConvergeDryRun(t *testing.T) {
	real, host := newSys(t)
	dry := system.NewDryRun(real)
	res := mustConverge(t, dry, []Desired{{Name: "alice", Password: "x"}}, Options{})
	if res.Action != system.Create || res.Need != system.NeedReload {
		t.Fatalf("%+v", res)
	}
	if _, err := os.Stat(filepath.Dir(host)); !os.IsNotExist(err) {
		t.Fatal("dry run created the folder")
	}
	// A dry run on an existing file reads it for real and writes nothing.
	seed(t, host, readFixture(t, "messy.passwd"), 0o600)
	mtime := backdate(t, host)
	res = mustConverge(t, system.NewDryRun(real), []Desired{{Name: "alice", Password: fixturePasswords(t)["alice"]}}, Options{Remove: []string{"carol"}})
	if res.Action != system.Update || statuses(res)[:15] != "alice=unchanged" {
		t.Fatalf("%+v", res)
	}
	assertUntouched(t, host, readFixture(t, "messy.passwd"), mtime)
}

func TestConvergePrune(t *testing.T) {
	sys, host := newSys(t)
	seed(t, host, readFixture(t, "messy.passwd"), 0o600)
	res := mustConverge(t, sys, []Desired{{Name: "bob", Password: fixturePasswords(t)["bob"]}}, Options{Prune: true})
	if res.Count(Removed) != 8 || res.Count(Unchanged) != 1 {
		t.Fatalf("%s", statuses(res))
	}
	f := readParsed(t, host)
	if len(f.Entries()) != 1 || f.Entries()[0].Name != "bob" {
		t.Fatalf("%q", f.Bytes())
	}
	// comments, blanks and the line without ':' stay
	if got := string(f.Bytes()); !strings.Contains(got, "# comment kept as is\n") || !strings.Contains(got, "this line has no colon\n") {
		t.Fatalf("%q", got)
	}
}

func TestConvergeNoEmptyFile(t *testing.T) {
	sys, host := newSys(t)
	res := mustConverge(t, sys, nil, Options{Remove: []string{"ghost"}})
	if res.Action != system.Noop || statuses(res) != "ghost=absent" {
		t.Fatalf("%+v", res)
	}
	if _, err := os.Stat(filepath.Dir(host)); !os.IsNotExist(err) {
		t.Fatal("created a file, or its folder, with no users")
	}
}

func TestConvergeOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to mosquitto needs root (CI runs as root)")
	}
	sys, host := newSys(t)
	acct, err := sys.LookupUser("mosquitto")
	if err != nil {
		t.Fatalf("mosquitto user: %v (apt-get install -y mosquitto)", err)
	}
	// mosquitto_passwd run as root leaves root:root 0644 (umask): fix that
	// even when no user changes.
	seed(t, host, readFixture(t, "mosquitto_passwd-pbkdf2.passwd"), 0o644)
	res := mustConverge(t, sys, []Desired{{Name: "alice", Password: fixturePasswords(t)["alice"]}}, Options{})
	if res.Action != system.Update || !strings.Contains(res.Changes[0].Detail, "owner and mode") {
		t.Fatalf("%+v", res.Changes)
	}
	fi, _ := os.Stat(host)
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != acct.UID || int(st.Gid) != acct.GID || fi.Mode().Perm() != 0o600 {
		t.Fatalf("owner %d:%d mode %v", st.Uid, st.Gid, fi.Mode())
	}
	if len(res.Warnings) != 0 {
		t.Fatal(res.Warnings)
	}
}

func TestConvergeFallbackOwner(t *testing.T) {
	sys, host := newSys(t)
	// A target system (--root) whose accounts have no mosquitto user.
	os.MkdirAll(filepath.Join(sys.Root(), "etc"), 0o755)
	os.WriteFile(filepath.Join(sys.Root(), "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(sys.Root(), "etc/group"), []byte("root:x:0:\n"), 0o644)
	res := mustConverge(t, sys, []Desired{{Name: "alice", Password: "x"}}, Options{})
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Text, "mosquitto does not exist") {
		t.Fatalf("warnings %v", res.Warnings)
	}
	fi, _ := os.Stat(host)
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != os.Getuid() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("owner %d mode %v", st.Uid, fi.Mode())
	}
}

// TestConvergeNeverWider watches the folder while users are written and
// fails if any file in it (the temp file included) is ever readable by
// group or others.
func TestConvergeNeverWider(t *testing.T) {
	sys, host := newSys(t)
	dir := filepath.Dir(host)
	seed(t, host, []byte("# seeded wide on purpose\n"), 0o600)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	var wide []string
	seen := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if fi, err := os.Lstat(filepath.Join(dir, e.Name())); err == nil {
					mu.Lock()
					seen++
					if fi.Mode().Perm()&0o077 != 0 {
						wide = append(wide, fmt.Sprintf("%s %v", e.Name(), fi.Mode()))
					}
					mu.Unlock()
				}
			}
		}
	}()
	for i := range 30 {
		mustConverge(t, sys, []Desired{{Name: fmt.Sprintf("u%d", i), Password: "x"}}, Options{Iterations: 1})
	}
	close(stop)
	wg.Wait()
	if len(wide) > 0 || seen == 0 {
		t.Fatalf("saw %d files, wide: %v", seen, wide)
	}
}

// TestConvergeConcurrentProcesses runs real processes (this test binary
// re-executed) that each add a user to one file at the same moment: the
// lock and the re-read under it must lose none.
func TestConvergeConcurrentProcesses(t *testing.T) {
	if root := os.Getenv("PASSWD_HELPER_ROOT"); root != "" {
		sys := system.NewReal(root)
		_, err := Converge(sys, target, []Desired{{Name: os.Getenv("PASSWD_HELPER_USER"), Password: "x"}}, Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	sys, host := newSys(t)
	seed(t, host, []byte("# shared\n"), 0o600)
	const n = 12
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConvergeConcurrentProcesses$")
		cmd.Env = append(os.Environ(), "PASSWD_HELPER_ROOT="+sys.Root(), fmt.Sprintf("PASSWD_HELPER_USER=user%02d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := cmd.CombinedOutput(); err != nil {
				errc <- fmt.Errorf("%v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	f := readParsed(t, host)
	if got := len(f.Entries()); got != n {
		t.Fatalf("%d users survived, want %d:\n%s", got, n, f.Bytes())
	}
	if !strings.HasPrefix(string(f.Bytes()), "# shared\n") {
		t.Fatal("comment lost")
	}
}

// SkipUnmanaged leaves the file's other users out of Result.Users and
// changes nothing else: the same file, the same report line, on a dry run
// and for real.
func TestSkipUnmanagedChangesOnlyTheList(t *testing.T) {
	for _, tt := range []struct {
		name   string
		want   []Desired
		opts   Options
		detail string
	}{
		{"add", []Desired{{Name: "carol", Password: "pw"}}, Options{Iterations: 101}, "1 added"},
		{"rm", nil, Options{Remove: []string{"bob"}}, "1 removed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			results := map[bool]Result{}
			files := map[bool]string{}
			for _, skip := range []bool{false, true} {
				sys, host := newSys(t)
				seed(t, host, []byte("alice:"+mustHash(t, "a")+"\nbob:"+mustHash(t, "b")+"\n"), 0o600)
				o := tt.opts
				o.SkipUnmanaged = skip
				results[skip] = mustConverge(t, sys, tt.want, o)
				data, _ := os.ReadFile(host)
				files[skip] = strings.ReplaceAll(string(data), "\n", "|")
			}
			full, skipped := results[false], results[true]
			if !strings.Contains(statuses(full), "alice=unmanaged") || strings.Contains(statuses(skipped), "unmanaged") {
				t.Errorf("users: listed %q, skipped %q", statuses(full), statuses(skipped))
			}
			if len(full.Changes) != 1 || len(skipped.Changes) != 1 || full.Changes[0].Detail != tt.detail || skipped.Changes[0].Detail != tt.detail {
				t.Errorf("report lines: listed %+v, skipped %+v, want detail %q", full.Changes, skipped.Changes, tt.detail)
			}
			if len(strings.Split(files[false], "|")) != len(strings.Split(files[true], "|")) || full.Action != skipped.Action {
				t.Errorf("files: %q and %q, actions %s and %s", files[false], files[true], full.Action, skipped.Action)
			}
		})
	}
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := New(pw, PBKDF2, 101)
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}
