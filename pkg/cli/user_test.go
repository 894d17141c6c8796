package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// testApp is an App on a temp root with a recorded runner, as the
// architecture page describes.
func testApp(t *testing.T, stdin string) (*App, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := NewApp(&IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	a.Sys = system.NewReal(t.TempDir(), system.WithRunner(&system.Recorder{}))
	if err := a.init("user"); err != nil {
		t.Fatal(err)
	}
	return a, &out, &errOut
}

func TestRunUserAddAndVerify(t *testing.T) {
	a, out, _ := testApp(t, "s3cret\n")
	o := &userOptions{App: a, file: "/etc/mosquitto/passwd", hash: "pbkdf2", passwordStdin: true}
	if err := runUserAdd(context.Background(), o, "alice", passwd.Options{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "+ user alice: created /etc/mosquitto/passwd") {
		t.Fatalf("output %q", out)
	}
	data, _ := a.Sys.ReadFile("/etc/mosquitto/passwd")
	if strings.Contains(string(data), "s3cret") || strings.Contains(out.String(), "s3cret") {
		t.Fatal("plaintext password leaked")
	}
	for pw, want := range map[string]error{"s3cret\n": nil, "wrong\n": errs.ErrCheckFailed} {
		a.IO.In = strings.NewReader(pw)
		if err := runUserVerify(context.Background(), o, "alice"); err != want {
			t.Errorf("verify %q: %v, want %v", pw, err, want)
		}
	}
	a.IO.In = strings.NewReader("x\n")
	if err := runUserVerify(context.Background(), o, "nobody"); err != errs.ErrCheckFailed {
		t.Errorf("unknown user: %v", err)
	}
}

// TestRunUserBadNameAsksNothing: a bad name is refused before the password
// is read or the file is touched.
func TestRunUserBadNameAsksNothing(t *testing.T) {
	a, _, _ := testApp(t, "")
	a.IO.InIsTerminal = true
	a.IO.ReadHidden = func() (string, error) { t.Fatal("prompted for a bad name"); return "", nil }
	o := &userOptions{App: a, file: "/etc/mosquitto/passwd", hash: "pbkdf2"}
	for _, name := range []string{"bad:name", "mosqprov-status"} { // the status identity's name is reserved
		err := runUserAdd(context.Background(), o, name, passwd.Options{})
		if exitCode(err) != ExitUsage {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := a.Sys.Stat("/etc/mosquitto"); err == nil {
		t.Fatal("created the folder")
	}
}

// TestRunUserAddPromptsTwice: on a terminal the password is asked twice;
// two different entries are bad input and change nothing, two equal ones
// are the password.
func TestRunUserAddPromptsTwice(t *testing.T) {
	a, _, errOut := testApp(t, "")
	a.IO.InIsTerminal = true
	answers := []string{"one", "two", "same", "same"}
	a.IO.ReadHidden = func() (string, error) { s := answers[0]; answers = answers[1:]; return s, nil }
	t.Setenv(PasswordEnv, "")
	os.Unsetenv(PasswordEnv)
	o := &userOptions{App: a, file: "/etc/mosquitto/passwd", hash: "pbkdf2"}
	if err := runUserAdd(context.Background(), o, "alice", passwd.Options{}); exitCode(err) != ExitUsage || !strings.Contains(err.Error(), "differ") {
		t.Fatalf("%v", err)
	}
	if strings.Count(errOut.String(), "password for alice") != 2 {
		t.Fatalf("prompts: %q", errOut)
	}
	if _, err := a.Sys.Stat("/etc/mosquitto/passwd"); err == nil {
		t.Fatal("wrote a file")
	}
	if err := runUserAdd(context.Background(), o, "alice", passwd.Options{}); err != nil {
		t.Fatal(err)
	}
	data, _ := a.Sys.ReadFile("/etc/mosquitto/passwd")
	f, _ := passwd.Parse(data)
	l, _ := f.Lookup("alice")
	if h, err := passwd.ParseHash(l.Hash); err != nil || !h.Verify("same") {
		t.Fatalf("the prompted password does not verify: %q %v", data, err)
	}
}

func TestUserFlags(t *testing.T) {
	a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	cmd := newUserAddCmd(a)
	for _, tc := range []struct {
		args []string
		algo passwd.Algo
		it   int
		err  string
	}{
		{nil, "", 0, ""},
		{[]string{"--hash", "sha512"}, passwd.SHA512, 0, ""},
		{[]string{"--iterations", "101"}, "", 101, ""},
		{[]string{"--hash", "pbkdf2", "--iterations", "5000"}, passwd.PBKDF2, 5000, ""},
		{[]string{"--hash", "sha512", "--iterations", "5"}, "", 0, "only to --hash pbkdf2"},
		{[]string{"--iterations", "0"}, "", 0, "outside"},
		{[]string{"--hash", "md5"}, "", 0, "--hash"},
	} {
		cmd.ResetFlags()
		o := &userOptions{App: a}
		bindHashFlags(cmd, o)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		opts, err := o.hashOptions(cmd)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(err) != ExitUsage {
				t.Errorf("%v: %v", tc.args, err)
			}
			continue
		}
		if err != nil || opts.Algo != tc.algo || opts.Iterations != tc.it {
			t.Errorf("%v: %+v %v", tc.args, opts, err)
		}
	}
}

// An empty password says what is wrong and what to do, for each place a
// password comes from, and changes nothing.
func TestEmptyPasswordSaysWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name, stdin string
		env         bool
		args        []string
		want        string
	}{
		{"stdin", "\n", false, []string{"user", "add", "alice", "--password-stdin"}, "mosqprov: --password-stdin: the first line of standard input is empty; put the password for alice on it, e.g. printf '%s\\n' \"$PW\" | mosqprov ...\n"},
		{"environment", "", true, []string{"user", "add", "alice"}, "mosqprov: MOSQPROV_PASSWORD: is set but empty; set it to the password for alice, or unset it to be asked on the terminal\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.env {
				t.Setenv(PasswordEnv, "")
			}
			var out, errOut bytes.Buffer
			a := NewApp(&IOStreams{In: strings.NewReader(tc.stdin), Out: &out, ErrOut: &errOut})
			code := Run(context.Background(), a, append([]string{"--root", root}, tc.args...))
			if code != ExitUsage || errOut.String() != tc.want {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, errOut.String(), ExitUsage, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "etc")); !os.IsNotExist(err) {
				t.Error("an empty password wrote something")
			}
		})
	}
	// At the prompt: Enter alone.
	var errOut bytes.Buffer
	a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &errOut, InIsTerminal: true, ReadHidden: func() (string, error) { return "", nil }})
	_, err := a.ReadSecret("password for alice", false, "", true)
	if err == nil || err.Error() != "password for alice: nothing was typed; type it at the prompt (it is not shown), or Ctrl-C to stop" {
		t.Errorf("prompt: %v", err)
	}
}
