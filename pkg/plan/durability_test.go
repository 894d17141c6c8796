package plan

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/layout"
)

// Durability a test can see (issue 11 §7): the crash tests kill the
// process, which the page cache survives; a power cut does not. What keeps
// a power cut after a rename from leaving an empty ca.key or password file
// is the order of the system calls themselves: the data written to the
// temp file, the temp file fsynced, the rename, then the folder fsynced
// (so the rename itself is on disk before the next step). This test runs
// the real binary under strace and checks that order for every managed
// file, so losing either fsync fails it.

// syscallEvent is one system call of the traced process, where it started.
type syscallEvent struct {
	name string
	// fdPath is the first argument's file, as strace -y shows it.
	fdPath string
	// from and to are a rename's paths, resolved against their folders.
	from, to string
	count    int // a write's byte count
}

var (
	straceLine = regexp.MustCompile(`^(?:\d+\s+)?(\w+)\((.*)$`)
	fdArg      = regexp.MustCompile(`^(-?\d+|AT_FDCWD)(?:<([^>]*)>)?$`)
)

// parseStrace reads an `strace -f -y` log into the calls, in the order
// they started (a Go program is multi-threaded: a call another thread
// interrupts is logged "<unfinished ...>" with its arguments first).
func parseStrace(t *testing.T, file string) []syscallEvent {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []syscallEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := straceLine.FindStringSubmatch(strings.TrimSuffix(sc.Text(), " <unfinished ...>"))
		if m == nil {
			continue // "<... resumed>", signals, exits
		}
		name, args := m[1], splitArgs(m[2])
		e := syscallEvent{name: name}
		if len(args) > 0 {
			if fm := fdArg.FindStringSubmatch(args[0]); fm != nil {
				e.fdPath = fm[2]
			}
		}
		switch name {
		case "write", "pwrite64":
			if len(args) >= 3 {
				e.count, _ = strconv.Atoi(strings.Fields(args[2])[0])
			}
		case "copy_file_range":
			// copy_file_range(fd_in, off_in, fd_out, off_out, len, flags):
			// bytes written to fd_out, as a write.
			e.name, e.fdPath = "write", ""
			if len(args) >= 5 {
				if fm := fdArg.FindStringSubmatch(args[2]); fm != nil {
					e.fdPath = fm[2]
				}
				e.count, _ = strconv.Atoi(args[4])
			}
		case "rename":
			if len(args) >= 2 {
				e.from, e.to = unquote(args[0]), unquote(args[1])
			}
		case "renameat", "renameat2":
			if len(args) >= 4 {
				e.from, e.to = atPath(args[0], args[1]), atPath(args[2], args[3])
			}
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

// splitArgs splits strace's argument list at top-level commas (not inside
// quotes, brackets or <fd paths>).
func splitArgs(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '[' || c == '{' || c == '<' || c == '(':
			depth++
		case c == ']' || c == '}' || c == '>' || c == ')':
			if depth == 0 { // the call's own closing parenthesis
				return append(out, strings.TrimSpace(s[start:i]))
			}
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return strings.Trim(s, `"`)
}

// atPath is a *at call's path: name alone when absolute or relative to
// the working folder, else joined to the folder fd shows.
func atPath(fd, name string) string {
	name = unquote(name)
	m := fdArg.FindStringSubmatch(fd)
	if filepath.IsAbs(name) || m == nil || m[1] == "AT_FDCWD" || m[2] == "" {
		return name
	}
	return filepath.Join(m[2], name)
}

// checkDurableWrite checks, in events, the last write of target: bytes
// written to a temp file, that temp file fsynced after its last write and
// before the rename over target, and target's folder fsynced after the
// rename and before the next rename (so before the command moves on).
func checkDurableWrite(t *testing.T, events []syscallEvent, target string) (written int) {
	t.Helper()
	ren := -1
	for i, e := range events {
		if e.to == target {
			ren = i
		}
	}
	if ren < 0 {
		t.Errorf("%s: no rename over it in the trace", target)
		return 0
	}
	tmp := events[ren].from
	if filepath.Dir(tmp) != filepath.Dir(target) || !strings.HasPrefix(filepath.Base(tmp), "."+filepath.Base(target)+".tmp-") {
		t.Errorf("%s: renamed from %s, not a temp file beside it", target, tmp)
	}
	lastWrite, synced := -1, false
	for i := 0; i < ren; i++ {
		e := events[i]
		if e.fdPath != tmp {
			continue
		}
		switch e.name {
		case "write", "pwrite64":
			lastWrite, synced = i, false
			written += e.count
		case "fsync", "fdatasync":
			if lastWrite >= 0 {
				synced = true
			}
		}
	}
	switch {
	case lastWrite < 0 || written == 0:
		t.Errorf("%s: no data written to its temp file %s before the rename", target, tmp)
	case !synced:
		t.Errorf("%s: its temp file %s was not fsynced between the last write and the rename: a power cut could leave it empty", target, tmp)
	}
	dirSynced := false
	for _, e := range events[ren+1:] {
		if e.from != "" {
			break // the next rename
		}
		if (e.name == "fsync" || e.name == "fdatasync") && e.fdPath == filepath.Dir(target) {
			dirSynced = true
			break
		}
	}
	if !dirSynced {
		t.Errorf("%s: its folder was not fsynced after the rename (before the next one): a power cut could undo the rename", target)
	}
	return written
}

// straceRig is what a test of the binary under strace needs: the binary,
// the example spec, and a target root (as given, and with links resolved,
// as strace -y names files).
func straceRig(t *testing.T) (bin string, env *exampleEnv, spec, root, resolved string) {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("strace not found: install it with `apt-get install -y strace`")
	}
	bin = buildBinary(t)
	_, env = loadExample(t, 0)
	spec = filepath.Join(env.dir, "broker.yaml")
	root = newRoot(t)
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	return bin, env, spec, root, resolved
}

// TestAtomicWriteSyscalls runs a first apply (every managed file created)
// and one that changes the password file (an update) under strace, and
// checks the order of the system calls for every managed file.
func TestAtomicWriteSyscalls(t *testing.T) {
	bin, env, spec, root, resolved := straceRig(t)
	// run runs the binary under strace, with stdin, and reads the calls.
	run := func(label, stdin string, env []string, args ...string) []syscallEvent {
		trace := filepath.Join(t.TempDir(), "trace")
		cmd := exec.Command("strace", append([]string{"-f", "-y", "-qq", "-s", "0", "-o", trace,
			"-e", "trace=write,pwrite64,copy_file_range,fsync,fdatasync,rename,renameat,renameat2", bin}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", label, err, out)
		}
		return parseStrace(t, trace)
	}
	apply := []string{"apply", "--yes", "--root", root, "-f", spec}
	events := run("first apply", "", []string{"MQTT_BLINDS_PASSWORD=" + env.blinds}, apply...)
	for _, p := range managed {
		checkDurableWrite(t, events, filepath.Join(resolved, p))
	}
	events = run("password change", "", []string{"MQTT_BLINDS_PASSWORD=" + env.blinds + "-changed"}, apply...)
	checkDurableWrite(t, events, filepath.Join(resolved, layout.PasswordFile))

	// `user add` of a new user copies the file's lines from the old file to
	// the temp file in the kernel (copy_file_range) and writes the new line:
	// all of it before the temp file's fsync.
	events = run("user add", "newcomer-password\n", nil, "user", "add", "newcomer", "--password-stdin", "--no-reload", "--root", root)
	target := filepath.Join(resolved, layout.PasswordFile)
	written := checkDurableWrite(t, events, target)
	st, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if int64(written) != st.Size() {
		t.Errorf("user add: %d bytes reached the temp file before the rename; the file has %d", written, st.Size())
	}
}

// A converged apply, and a `user add` that changes the password file, open
// each file once (issue 12 §5): the write compares with the bytes already
// read, and every later step reads them again from memory.
func TestEachFileIsOpenedOnce(t *testing.T) {
	bin, env, spec, root, resolved := straceRig(t)
	// opens runs the binary under strace and counts the files under the
	// root it opened (folders left out: each access walks them).
	opens := func(stdin string, args ...string) map[string]int {
		trace := filepath.Join(t.TempDir(), "trace")
		cmd := exec.Command("strace", append([]string{"-f", "-y", "-qq", "-o", trace, "-e", "trace=openat", bin}, args...)...)
		cmd.Env = append(os.Environ(), "MQTT_BLINDS_PASSWORD="+env.blinds)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", args, err, out)
		}
		data, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		// openat(6</ROOT/etc/mosquitto>, "passwd", O_RDONLY|...) = 7</ROOT/etc/mosquitto/passwd>
		re := regexp.MustCompile(`openat\([^,]*, "[^"]*", ([A-Z_|]+)[^)]*\) = \d+<([^>]*)>`)
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			if strings.HasPrefix(m[2], resolved+"/") && !strings.Contains(m[1], "O_DIRECTORY") && !strings.Contains(m[1], "O_PATH") && !strings.Contains(m[1], "O_CREAT") {
				n[strings.TrimPrefix(m[2], resolved)]++
			}
		}
		return n
	}
	apply := []string{"apply", "--yes", "--root", root, "-f", spec}
	opens("", apply...)
	time.Sleep(50 * time.Millisecond) // a tick of the coarse clock after the writes
	got := opens("", apply...)
	for _, p := range managed {
		if got[p] != 1 {
			t.Errorf("converged apply opened %s %d times, want once", p, got[p])
		}
	}
	got = opens("new-password\n", "user", "add", "blinds", "--password-stdin", "--no-reload", "--root", root)
	if got[layout.PasswordFile] != 1 {
		t.Errorf("user add opened %s %d times, want once (%v)", layout.PasswordFile, got[layout.PasswordFile], got)
	}
}

// Where the kernel can't copy between the two files (copy_file_range
// fails: another file system, an old kernel, a file system without it), a
// streamed write copies through memory instead, with the same bytes.
func TestStreamedWriteWithoutKernelCopy(t *testing.T) {
	bin, env, spec, root, _ := straceRig(t)
	cmd := exec.Command(bin, "apply", "--yes", "--root", root, "-f", spec)
	cmd.Env = append(os.Environ(), "MQTT_BLINDS_PASSWORD="+env.blinds)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	file := filepath.Join(root, layout.PasswordFile)
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, errno := range []string{"EXDEV", "ENOSYS", "EOPNOTSUPP"} {
		name := "added-" + strings.ToLower(errno)
		trace := filepath.Join(t.TempDir(), "trace")
		cmd := exec.Command("strace", "-f", "-qq", "-o", trace, "-e", "trace=copy_file_range",
			"-e", "inject=copy_file_range:error="+errno,
			bin, "user", "add", name, "--password-stdin", "--no-reload", "--root", root)
		cmd.Stdin = strings.NewReader("pw-" + errno + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user add with copy_file_range failing %s: %v\n%s", errno, err, out)
		}
		if data, _ := os.ReadFile(trace); !strings.Contains(string(data), "(INJECTED)") {
			t.Fatalf("%s: copy_file_range was not tried:\n%s", errno, data)
		}
		after, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(after, before) || !bytes.HasPrefix(after[len(before):], []byte(name+":$7$")) || bytes.Count(after[len(before):], []byte("\n")) != 1 {
			t.Fatalf("%s: the file is not the old one and the new user's line:\n%s", errno, after)
		}
		before = after
	}
}
