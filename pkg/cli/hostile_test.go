package cli

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// endless is a standard input that never ends ('a' after 'a', no newline),
// as `sudo mosqprov user add bob --password-stdin < /dev/zero`-like mistakes
// give. It counts what was read, and gives up with an error past limit so a
// broken cap fails the test instead of eating the machine's memory.
type endless struct {
	read, limit int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.read >= e.limit {
		return 0, errors.New("test stdin: read past the limit; the input is not capped")
	}
	n := min(len(p), e.limit-e.read)
	for i := range p[:n] {
		p[i] = 'a'
	}
	e.read += n
	return n, nil
}

// TestInputCapped: every read of the caller's input stops at its cap with
// one line and exit 3, and nothing under the root changes: passwords from
// stdin, import lists, certificates to import, the spec and its
// password_file, /dev/zero and folders among them.
func TestInputCapped(t *testing.T) {
	root := t.TempDir()
	rec := installedRecorder()
	tmp := t.TempDir()
	spec := writeTestFile(t, filepath.Join(tmp, "broker.yaml"), productSpec)
	zeroSecret := writeTestFile(t, filepath.Join(tmp, "zero.yaml"), strings.Replace(productSpec, "password_env: MOSQPROV_PASSWORD", "password_file: /dev/zero", 1))
	t.Setenv(PasswordEnv, "alice-pw")
	if code, out, errOut := productRun(t, root, rec, "", "apply", "-f", spec, "--yes"); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	before := treeDigest(t, root)
	const slack = 64 << 10 // what a buffered reader may read ahead
	for _, tc := range []struct {
		args  []string
		stdin bool // endless standard input
		max   int  // the cap on what may be read from it
		want  string
	}{
		{[]string{"user", "add", "bob", "--password-stdin"}, true, system.MaxSecret, "--password-stdin: the line is longer than 64 KiB"},
		{[]string{"user", "hash", "--password-stdin"}, true, system.MaxSecret, "--password-stdin: the line is longer than 64 KiB"},
		{[]string{"cert", "client", "phone", "--p12", "--password-stdin", "--out", filepath.Join(tmp, "phone")}, true, system.MaxSecret, "--password-stdin: the line is longer than 64 KiB"},
		{[]string{"user", "import", "-"}, true, system.MaxImport, "FILE: stdin is larger than 16 MiB"},
		{[]string{"user", "import", "/dev/zero"}, false, 0, "FILE: /dev/zero is larger than 16 MiB"},
		{[]string{"user", "import", tmp}, false, 0, "FILE: " + tmp + " is a folder, not a file"},
		{[]string{"cert", "import", "--cert", "/dev/zero", "--key", "/dev/zero"}, false, 0, "--cert: /dev/zero is larger than 1 MiB"},
		{[]string{"plan", "-f", "/dev/zero"}, false, 0, "spec: /dev/zero is larger than 256 KiB"},
		{[]string{"apply", "-f", "/dev/zero", "--yes"}, false, 0, "spec: /dev/zero is larger than 256 KiB"},
		{[]string{"plan", "-f", tmp}, false, 0, "spec: " + tmp + " is a folder, not a file"},
		{[]string{"apply", "-f", tmp, "--yes"}, false, 0, "spec: " + tmp + " is a folder, not a file"},
		{[]string{"plan", "-f", zeroSecret}, false, 0, "users[0].password_file: /dev/zero is larger than 1 MiB"},
	} {
		name := strings.Join(tc.args, " ")
		in := &endless{limit: 64 << 20}
		var out, errOut bytes.Buffer
		app := NewApp(&IOStreams{In: in, Out: &out, ErrOut: &errOut})
		if !tc.stdin {
			app.IO.In = strings.NewReader("")
		}
		app.NewSystem = func(g Globals) system.System {
			real := system.NewReal(g.Root, system.WithRunner(rec))
			if g.DryRun {
				return system.NewDryRun(real)
			}
			return real
		}
		code := Run(context.Background(), app, append([]string{"--root", root}, tc.args...))
		if code != ExitUsage {
			t.Errorf("%s: exit %d, want %d\n%s%s", name, code, ExitUsage, out.String(), errOut.String())
		}
		if got := errOut.String(); !strings.HasPrefix(got, "mosqprov: ") || strings.Count(got, "\n") != 1 || !strings.Contains(got, tc.want) {
			t.Errorf("%s: want one line containing %q, got %q", name, tc.want, got)
		}
		if tc.stdin && in.read > tc.max+slack {
			t.Errorf("%s: read %d bytes of stdin, cap %d", name, in.read, tc.max)
		}
		if after := treeDigest(t, root); after != before {
			t.Errorf("%s: changed files under the root", name)
			before = after
		}
	}
}
