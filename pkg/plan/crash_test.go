package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/state"
)

// Crash safety: an apply interrupted anywhere (a write failing with ENOSPC,
// the commit of one file failing, the process killed) leaves every managed
// file as it was or as it should be, never torn, and the next apply
// converges. Faults are injected into the real binary with strace (install
// it with `apt-get install -y strace`).

var managed = []string{layout.CAKey, layout.CACert, layout.BrokerCACert, layout.ServerKey, layout.ServerCert,
	layout.PasswordFile, layout.ACLFile, layout.DropIn, state.File}

// private files must never be readable by others, even for a moment.
var private = map[string]bool{layout.CAKey: true, layout.ServerKey: true, layout.PasswordFile: true, layout.ACLFile: true}

type crashRig struct {
	t      *testing.T
	bin    string
	env    *exampleEnv
	specV1 string
	specV2 string
	// want holds the deterministic files (configuration, ACL) per spec.
	want map[string]map[string][]byte
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildBinary builds cmd/mosqprov once for every test of the package that
// runs the real binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mosqprov-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "mosqprov")
		if out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/mosqprov").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func newCrashRig(t *testing.T) *crashRig {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("strace not found: install it with `apt-get install -y strace`")
	}
	bin := buildBinary(t)
	s, env := loadExample(t, 0)
	v1 := s.File()
	data, _ := os.ReadFile(v1)
	// v2 changes every file an update writes: a new name (the server
	// certificate is reissued), a moved listener, one more ACL rule; and
	// the blinds' password changes through the environment (see run).
	text := strings.Replace(string(data), "names: [mqtt.home.arpa]", "names: [mqtt.home.arpa, broker.home.arpa]", 1)
	text = strings.Replace(text, fmt.Sprintf("port: %d", env.ports["wss"]), fmt.Sprintf("port: %d", env.ports["wss"]+1), 1)
	text = strings.Replace(text, `readwrite: ["home/blinds/#"]`, `readwrite: ["home/blinds/#", "home/sun/#"]`, 1)
	if text == string(data) {
		t.Fatal("the example changed; update newCrashRig")
	}
	v2 := filepath.Join(env.dir, "broker-v2.yaml")
	os.WriteFile(v2, []byte(text), 0o644)
	r := &crashRig{t: t, bin: bin, env: env, specV1: v1, specV2: v2, want: map[string]map[string][]byte{}}
	for _, spec := range []string{v1, v2} {
		root := newRoot(t)
		if out, err := r.apply(root, spec, nil); err != nil {
			t.Fatalf("reference apply of %s: %v\n%s", spec, err, out)
		}
		r.want[spec] = map[string][]byte{}
		for _, p := range []string{layout.DropIn, layout.ACLFile} {
			r.want[spec][p], _ = os.ReadFile(filepath.Join(root, p))
		}
	}
	return r
}

func (r *crashRig) password(spec string) string {
	if spec == r.specV2 {
		return r.env.blinds + "-v2"
	}
	return r.env.blinds
}

// apply runs the binary, under strace with straceArgs when given.
func (r *crashRig) apply(root, spec string, straceArgs []string) ([]byte, error) {
	cmd := r.command(root, spec, straceArgs)
	return cmd.CombinedOutput()
}

func (r *crashRig) command(root, spec string, straceArgs []string) *exec.Cmd {
	args := []string{"apply", "--yes", "--root", root, "-f", spec}
	var cmd *exec.Cmd
	if straceArgs != nil {
		cmd = exec.Command("strace", append(append([]string{"-f", "-qq", "-o", "/dev/null"}, straceArgs...), append([]string{r.bin}, args...)...)...)
	} else {
		cmd = exec.Command(r.bin, args...)
	}
	cmd.Env = append(os.Environ(), "MQTT_BLINDS_PASSWORD="+r.password(spec))
	return cmd
}

type fileState struct {
	data []byte
	mode fs.FileMode
}

func snapshot(root string) map[string]*fileState {
	m := map[string]*fileState{}
	for _, p := range managed {
		host := filepath.Join(root, p)
		data, err := os.ReadFile(host)
		if err != nil {
			continue
		}
		fi, _ := os.Stat(host)
		m[p] = &fileState{data: data, mode: fi.Mode().Perm()}
	}
	return m
}

// check asserts every managed file is as it was or as spec says, whole.
func (r *crashRig) check(label, root, spec string, before map[string]*fileState) {
	t := r.t
	t.Helper()
	now := snapshot(root)
	for _, p := range managed {
		b, n := before[p], now[p]
		if n != nil && private[p] && n.mode&0o077 != 0 {
			t.Errorf("%s: %s is mode %04o", label, p, n.mode)
		}
		if (b == nil && n == nil) || (b != nil && n != nil && bytes.Equal(b.data, n.data)) {
			continue // as it was
		}
		if n == nil {
			t.Errorf("%s: %s was removed", label, p)
			continue
		}
		if err := r.whole(p, spec, n.data); err != nil {
			t.Errorf("%s: %s is neither as it was nor as it should be: %v", label, p, err)
		}
	}
	// A killed process can't remove its temp files, but what it leaves is
	// never the file itself, and a secret's temp file is never readable
	// by others either.
	for p := range private {
		tmps, _ := filepath.Glob(filepath.Join(root, filepath.Dir(p), "."+filepath.Base(p)+".tmp-*"))
		for _, tmp := range tmps {
			if fi, err := os.Stat(tmp); err == nil && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: temp file %s is mode %04o", label, tmp, fi.Mode().Perm())
			}
		}
	}
}

// whole says whether data is a complete, correct version of p for spec.
func (r *crashRig) whole(p, spec string, data []byte) error {
	switch p {
	case layout.DropIn, layout.ACLFile:
		if !bytes.Equal(data, r.want[spec][p]) {
			return fmt.Errorf("differs from the rendered file")
		}
	case layout.CAKey, layout.ServerKey:
		if _, err := pki.ParsePrivateKey(data); err != nil {
			return err
		}
	case layout.CACert, layout.BrokerCACert, layout.ServerCert:
		if _, err := pki.ParseCertificate(data); err != nil {
			return err
		}
	case layout.PasswordFile:
		f, err := passwd.Parse(data)
		if err != nil {
			return err
		}
		for name, pw := range map[string]string{"blinds": r.password(spec), "telegram-bot": r.env.bot, "android-app": r.env.android} {
			l, ok := f.Lookup(name)
			if !ok {
				return fmt.Errorf("no %s", name)
			}
			h, err := passwd.ParseHash(l.Hash)
			if err != nil || !h.Verify(pw) {
				return fmt.Errorf("%s's hash does not verify its password", name)
			}
		}
	case state.File:
		var st state.State
		if err := json.Unmarshal(data, &st); err != nil {
			return err
		}
	}
	return nil
}

// converge runs a clean apply after a fault, then another that must find
// nothing to do.
func (r *crashRig) converge(label, root, spec string) {
	t := r.t
	t.Helper()
	if out, err := r.apply(root, spec, nil); err != nil {
		t.Fatalf("%s: the apply after the fault failed: %v\n%s", label, err, out)
	}
	out, err := r.apply(root, spec, nil)
	if err != nil || !bytes.Contains(out, []byte("No changes.")) {
		t.Fatalf("%s: not converged after the fault: %v\n%s", label, err, out)
	}
}

// start prepares a root for a scenario: empty (fresh), or v1 applied (update).
func (r *crashRig) start(update bool) (root, spec string) {
	root = newRoot(r.t)
	if !update {
		return root, r.specV1
	}
	if out, err := r.apply(root, r.specV1, nil); err != nil {
		r.t.Fatalf("apply v1: %v\n%s", err, out)
	}
	return root, r.specV2
}

func scenarios() []struct {
	name   string
	update bool
} {
	return []struct {
		name   string
		update bool
	}{{"fresh", false}, {"update", true}}
}

func TestCrashCommitFails(t *testing.T) {
	t.Parallel()
	r := newCrashRig(t)
	for _, sc := range scenarios() {
		for _, p := range managed {
			root, spec := r.start(sc.update)
			before := snapshot(root)
			label := sc.name + " rename " + p
			// The commit of this one file (rename of its temp file over it)
			// fails: everything before it is done, it and all after are not.
			out, err := r.apply(root, spec, append(commitPaths(root, p), "-e", "trace=rename,renameat,renameat2",
				"-e", "inject=rename,renameat,renameat2:error=ENOSPC"))
			wrote := !bytes.Equal(snapshotData(before, p), snapshotData(snapshot(root), p))
			if sc.update && (p == layout.CAKey || p == layout.CACert || p == layout.BrokerCACert) {
				// The CA is kept on update: nothing to fail.
				if err != nil || wrote {
					t.Errorf("%s: %v (wrote %v)\n%s", label, err, wrote, out)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s: apply succeeded through the fault\n%s", label, out)
			}
			if wrote || !bytes.Contains(out, []byte("no space left on device")) {
				t.Errorf("%s: wrote=%v, output:\n%s", label, wrote, out)
			}
			if tmp, _ := filepath.Glob(filepath.Join(root, filepath.Dir(p), ".*.tmp-*")); len(tmp) > 0 {
				t.Errorf("%s: temp files left: %v", label, tmp)
			}
			r.check(label, root, spec, before)
			r.converge(label, root, spec)
		}
	}
}

// commitPaths are the strace -P filters that catch the rename committing
// managed file p: its host path (a rename by path) and its bare name, since
// a write renames relative to its open folder (renameat(dirfd, ".p.tmp-N",
// dirfd, "p"), issue 11) and strace matches a path argument literally. The
// two ca.crt share a name: the broker's copy is caught at the CA's, which
// is committed first, a fault at an earlier commit of the same run.
func commitPaths(root, p string) []string {
	return []string{"-P", filepath.Join(root, p), "-P", filepath.Base(p)}
}

func snapshotData(m map[string]*fileState, p string) []byte {
	if m[p] == nil {
		return nil
	}
	return m[p].data
}

func TestCrashWriteFails(t *testing.T) {
	t.Parallel()
	r := newCrashRig(t)
	for _, sc := range scenarios() {
		failed := 0
		// Go counts writes per OS thread, so the Nth write from on is a
		// different point of the run for each N: sweep until one run gets
		// through (strace's when=N+ fails that write and every later one).
		for _, n := range []int{1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 30} {
			errno := []string{"ENOSPC", "EIO"}[n%2]
			root, spec := r.start(sc.update)
			before := snapshot(root)
			label := fmt.Sprintf("%s write#%d+ %s", sc.name, n, errno)
			// A run the fault hits only on its way to stdout exits 0 with
			// its work done; converge below proves that.
			if _, err := r.apply(root, spec, []string{"-e", "trace=write", "-e", fmt.Sprintf("inject=write:error=%s:when=%d+", errno, n)}); err != nil {
				failed++
			}
			r.check(label, root, spec, before)
			r.converge(label, root, spec)
		}
		if failed == 0 {
			t.Errorf("%s: no injected write failure stopped an apply: the test tested nothing", sc.name)
		}
	}
}

// The process is killed (SIGKILL, which nothing can catch or clean up
// after) at chosen system calls rather than after a wall-clock delay, so
// every run dies at a known point: at the Nth write of a thread (anywhere,
// mid-file included), and at the commit (rename) of each managed file.
func TestCrashKilled(t *testing.T) {
	t.Parallel()
	r := newCrashRig(t)
	// A kill point: the Nth write of a thread and every later one (n > 0),
	// or the commit of one managed file (path).
	type point struct {
		n    int
		path string
	}
	var points []point
	for _, n := range []int{1, 2, 3, 5, 8, 13, 21, 34} {
		points = append(points, point{n: n})
	}
	for _, p := range managed {
		points = append(points, point{path: p})
	}
	for _, sc := range scenarios() {
		killed := 0
		for _, pt := range points {
			root, spec := r.start(sc.update)
			before := snapshot(root)
			label := fmt.Sprintf("%s killed at write #%d+", sc.name, pt.n)
			args := []string{"-e", "trace=write", "-e", fmt.Sprintf("inject=write:signal=SIGKILL:when=%d+", pt.n)}
			if pt.path != "" {
				label = sc.name + " killed at the commit of " + pt.path
				args = append(commitPaths(root, pt.path), "-e", "trace=rename,renameat,renameat2",
					"-e", "inject=rename,renameat,renameat2:signal=SIGKILL")
			}
			out, err := r.apply(root, spec, args)
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
				killed++
			} else if err != nil {
				t.Errorf("%s: failed without being killed: %v\n%s", label, err, out)
			}
			r.check(label, root, spec, before)
			r.converge(label, root, spec)
		}
		t.Logf("%s: %d of %d runs killed", sc.name, killed, len(points))
		// Every write point is reached; commits are not where the file is
		// already as it should be (the CA on update).
		if killed < len(points)/2 {
			t.Errorf("%s: only %d of %d runs were killed: the test tests too little", sc.name, killed, len(points))
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}
