package cli

// Tests of the command line as one product: promises every command keeps
// (-o json, secrets, idempotent wording, bad input), checked across the
// whole command tree rather than one command group at a time.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// productRun runs one command line in-process the way main does, on root,
// with commands answered by rec (apt and systemctl are never run) and
// stdin as given, no terminal.
func productRun(t *testing.T, root string, rec *system.Recorder, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := NewApp(&IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	app.NewSystem = func(g Globals) system.System {
		real := system.NewReal(g.Root, system.WithRunner(rec))
		if g.DryRun {
			return system.NewDryRun(real)
		}
		return real
	}
	code = Run(context.Background(), app, append([]string{"--root", root}, args...))
	return code, out.String(), errOut.String()
}

// installedRecorder answers dpkg-query as a machine with the broker's
// packages installed, so install reports them unchanged.
func installedRecorder() *system.Recorder {
	return (&system.Recorder{}).On("dpkg-query", system.Output{
		Stdout: []byte("mosquitto\tinstalled\t2.0.11-1.2+deb12u1\nmosquitto-clients\tinstalled\t2.0.11-1.2+deb12u1\n"),
	}, nil)
}

// leafCommands names every command a user can run that has no
// subcommands, cobra's completion commands included; help and cobra's
// hidden __complete are documentation and machinery.
func leafCommands() []string {
	root := NewRootCmd(NewApp(&IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}))
	root.InitDefaultCompletionCmd()
	var leaves []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || strings.HasPrefix(sub.Name(), "__") {
				continue
			}
			if sub.HasSubCommands() {
				walk(sub)
				continue
			}
			leaves = append(leaves, commandName(sub))
		}
	}
	walk(root)
	return leaves
}

// productSpec is a broker.yaml apply can converge under a temp root: no
// package, no service, one user whose password comes from the environment.
const productSpec = `hostname: localhost
ips: [127.0.0.1]
listeners:
  - {type: mqtt, port: 18830, bind: 127.0.0.1}
  - {type: mqtts, port: 18883}
users:
  - {name: alice, password_env: MOSQPROV_PASSWORD}
acl:
  - {user: alice, readwrite: ["home/#"]}
package: {install: false}
service: {enable: false}
`

func writeTestFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jsonCase is one -o json invocation: its arguments, the command the
// report must name and the exit code.
type jsonCase struct {
	args    []string
	stdin   string
	command string
	code    int
}

// TestJSONEveryCommand runs every leaf command with -o json, on success and
// on failure, and requires exactly one json object on stdout with command,
// changed and changes, and an error exactly when the command failed. It
// fails when a leaf command has no case, so a new command can't skip it.
func TestJSONEveryCommand(t *testing.T) {
	b := startVDBroker(t, 100) // a real broker for verify to pass against
	root := t.TempDir()
	rec := installedRecorder()
	tmp := t.TempDir()
	users := writeTestFile(t, filepath.Join(tmp, "users.txt"), "bob:bob-pw\n")
	spec := writeTestFile(t, filepath.Join(tmp, "broker.yaml"), productSpec)
	t.Setenv(PasswordEnv, "alice-pw")
	t.Setenv(P12PasswordEnv, "bundle-pw")

	c := func(code int, command string, args ...string) jsonCase {
		return jsonCase{args: args, command: command, code: code}
	}
	cases := []jsonCase{
		c(0, "version", "version"),
		c(0, "user add", "user", "add", "alice"),
		c(3, "user add", "user", "add", "a:b"),
		c(0, "user list", "user", "list"),
		c(3, "user list", "user", "list", "--file", "relative/passwd"),
		c(0, "user verify", "user", "verify", "alice"),
		{args: []string{"user", "verify", "alice", "--password-stdin"}, stdin: "wrong\n", command: "user verify", code: 1},
		c(0, "user hash", "user", "hash"),
		c(3, "user hash", "user", "hash", "--hash", "md5"),
		c(0, "user import", "user", "import", users),
		c(3, "user import", "user", "import", filepath.Join(tmp, "missing.txt")),
		c(0, "user rm", "user", "rm", "bob"),
		c(3, "user rm", "user", "rm", "a:b"),
		c(0, "cert ca", "cert", "ca"),
		c(3, "cert ca", "cert", "ca", "--key-type", "dsa"),
		c(0, "cert server", "cert", "server"),
		c(3, "cert server", "cert", "server", "--days", "0"),
		c(0, "cert client", "cert", "client", "dev1"),
		c(0, "cert client", "cert", "client", "phone", "--p12", "--out", filepath.Join(tmp, "phone")),
		c(3, "cert client", "cert", "client", "a/b"),
		c(0, "cert status", "cert", "status"),
		c(3, "cert status", "cert", "status", "--warn", "-1"),
		c(0, "cert renew", "cert", "renew"),
		c(3, "cert renew", "cert", "renew", "--renew-before", "-1"),
		c(0, "cert export", "cert", "export"),
		c(3, "cert export", "cert", "export", "--format", "jpeg"),
		c(0, "cert revoke", "cert", "revoke", "dev1"),
		c(3, "cert revoke", "cert", "revoke", "nobody"),
		// The server certificate made above, imported as if from elsewhere.
		c(0, "cert import", "cert", "import", "--cert", filepath.Join(root, "etc/mosquitto/certs/server.crt"),
			"--key", filepath.Join(root, "etc/mosquitto/certs/server.key")),
		c(3, "cert import", "cert", "import", "--cert", filepath.Join(tmp, "none.crt"), "--key", filepath.Join(tmp, "none.key")),
		c(3, "cert import", "cert", "import"),
		c(0, "conf render", "conf", "render"),
		c(0, "conf check", "conf", "check", "--listener", "mqtt:18830:127.0.0.1"),
		c(0, "conf write", "conf", "write"),
		c(3, "conf write", "conf", "write", "--listener", "bogus"),
		c(0, "acl allow", "acl", "allow", "alice", "home/#", "--read"),
		c(3, "acl allow", "acl", "allow", "alice", "home/#"),
		c(0, "acl deny", "acl", "deny", "alice", "home/alarm/#"),
		c(3, "acl deny", "acl", "deny", "alice", "a/#/b"),
		c(0, "acl pattern", "acl", "pattern", "users/%u/#", "--readwrite"),
		c(3, "acl pattern", "acl", "pattern", "users/%u/#"),
		c(0, "acl list", "acl", "list"),
		c(0, "acl rm", "acl", "rm", "alice", "home/#"),
		c(3, "acl rm", "acl", "rm"),
		c(0, "install", "install"),
		c(3, "install", "install", "--lock-timeout", "-1s"),
		c(0, "plan", "plan", "-f", spec),
		c(2, "plan", "plan", "-f", spec, "--detailed-exitcode"),
		c(3, "plan", "plan", "-f", filepath.Join(tmp, "missing.yaml")),
		c(3, "apply", "apply", "-f", spec),
		c(0, "apply", "apply", "-f", spec, "--yes"),
		c(0, "apply", "apply", "-f", spec, "--yes"),
		{args: []string{"backup", "--passphrase-stdin", "--out", filepath.Join(tmp, "b.age")}, stdin: "backup-pass-phrase\n", command: "backup", code: 0},
		c(3, "backup", "backup", "--recipient", "not-a-recipient"),
		{args: []string{"restore", "--passphrase-stdin", "--force", filepath.Join(tmp, "b.age")}, stdin: "backup-pass-phrase\n", command: "restore", code: 0},
		{args: []string{"restore", "--passphrase-stdin", filepath.Join(tmp, "b.age")}, stdin: "wrong-pass-phrase\n", command: "restore", code: 3},
		c(0, "bridge list", "bridge", "list"),
		c(3, "bridge add", "bridge", "add", "hub"),
		c(3, "bridge rm", "bridge", "rm", "no such/bridge"),
		c(0, "verify", "--root", b.root, "verify"),
		c(1, "verify", "verify", "--host", "127.0.0.1", "--listener", fmt.Sprintf("mqtt:%d", brokertest.FreePort(t)), "--timeout", "1s"),
		c(0, "doctor", "doctor", "-f", spec),
		c(3, "doctor", "doctor", "-f", filepath.Join(tmp, "missing.yaml")),
		c(3, "setup", "setup"),
		// No status identity here (the spec has no status_reader): exit 1.
		c(1, "status", "status", "-f", spec),
		c(3, "status", "status", "--watch"),
		// man is gen-docs' (internal/cmd/gen-docs), tested there.
		c(3, "completion bash", "completion", "bash"),
		c(3, "completion zsh", "completion", "zsh"),
		c(3, "completion fish", "completion", "fish"),
		c(3, "completion powershell", "completion", "powershell"),
		// Usage errors cobra finds before any command runs.
		c(3, "user", "user"),
		c(3, "user", "user", "nope"),
		c(3, "mosqprov", "nope"),
		c(3, "version", "version", "--bogus"),
	}
	for _, name := range []string{"enable", "start", "stop", "reload", "restart", "status"} {
		// Under --root the host's unit is left alone: a usage error.
		cases = append(cases, c(3, "service "+name, "service", name))
	}

	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := productRun(t, root, rec, tc.stdin, append([]string{"-o", "json"}, tc.args...)...)
			rep := decodeOneReport(t, out)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			if rep.Command != tc.command {
				t.Errorf("command %q, want %q", rep.Command, tc.command)
			}
			// Exit 2 is plan's "there are changes", not a failure.
			if failed := code != ExitOK && code != ExitChanges; failed != (rep.Error != "") {
				t.Errorf("exit %d with error %q", code, rep.Error)
			}
			if errOut != "" {
				t.Errorf("stderr is not empty with -o json and no -v:\n%s", errOut)
			}
			covered[rep.Command] = true
		})
	}
	for _, leaf := range leafCommands() {
		if !covered[leaf] {
			t.Errorf("no -o json case covers %q", leaf)
		}
	}
}

// decodeOneReport requires out to be exactly one json object holding the
// report's always-present fields.
func decodeOneReport(t *testing.T, out string) Report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("stdout is not a json object: %v\n%s", err, out)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one json value:\n%s", out)
	}
	for _, key := range []string{"command", "changed", "changes"} {
		if _, ok := raw[key]; !ok {
			t.Fatalf("the report lacks %q:\n%s", key, out)
		}
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Changes == nil {
		t.Fatalf("changes is null, want a list:\n%s", out)
	}
	return rep
}

// TestSecretsNeverPrinted runs every command that takes a password, and
// those that make private keys, with --verbose, in text and json, with the
// password from the environment and from stdin, and greps all they print
// for the password and for a private key.
func TestSecretsNeverPrinted(t *testing.T) {
	b := startVDBroker(t, 100)
	secret := b.password // alice's real password on the running broker
	root := t.TempDir()
	rec := installedRecorder()
	tmp := t.TempDir()
	users := writeTestFile(t, filepath.Join(tmp, "users.txt"), "bob:"+secret+"\ncarol:"+secret+"\n")
	spec := writeTestFile(t, filepath.Join(tmp, "broker.yaml"), productSpec)
	t.Setenv(PasswordEnv, secret)
	t.Setenv(P12PasswordEnv, secret)

	type run struct {
		stdin string
		args  []string
	}
	env := func(args ...string) run { return run{args: args} }
	stdin := func(args ...string) run { return run{stdin: secret + "\n", args: args} }
	runs := []run{
		env("user", "add", "alice"),
		stdin("user", "add", "dave", "--password-stdin"),
		env("user", "verify", "alice"),
		stdin("user", "verify", "dave", "--password-stdin"),
		{stdin: "not-" + secret + "\n", args: []string{"user", "verify", "dave", "--password-stdin"}},
		env("user", "import", users),
		{stdin: "erin:" + secret + "\n", args: []string{"user", "import", "-"}},
		env("user", "hash"),
		stdin("user", "hash", "--password-stdin", "--hash", "sha512"),
		env("user", "list"),
		env("cert", "ca"),
		env("cert", "server"),
		env("cert", "client", "phone", "--p12"),
		stdin("cert", "client", "tablet", "--p12", "--password-stdin", "--out", filepath.Join(tmp, "tablet")),
		env("cert", "import", "--cert", filepath.Join(root, "etc/mosquitto/certs/server.crt"), "--key", filepath.Join(root, "etc/mosquitto/certs/server.key")),
		env("cert", "renew"),
		env("cert", "status"),
		env("cert", "export"),
		env("plan", "-f", spec),
		env("apply", "-f", spec, "--yes"),
		env("apply", "-f", spec, "--yes", "--dry-run"),
		env("doctor", "-f", spec),
		env("--root", b.root, "verify", "--user", b.user),
		stdin("--root", b.root, "verify", "--user", b.user, "--password-stdin"),
		stdin("verify", "--host", "127.0.0.1", "--listener", fmt.Sprintf("mqtt:%d", b.plain), "--user", b.user, "--password-stdin"),
	}
	for _, r := range runs {
		for _, output := range []string{"text", "json"} {
			args := append([]string{"-v", "-o", output}, r.args...)
			code, out, errOut := productRun(t, root, rec, r.stdin, args...)
			all := out + errOut
			if strings.Contains(all, secret) {
				t.Errorf("%s: the password was printed (exit %d):\n%s", strings.Join(args, " "), code, all)
			}
			if strings.Contains(all, "PRIVATE KEY") {
				t.Errorf("%s: a private key was printed (exit %d):\n%s", strings.Join(args, " "), code, all)
			}
			if code != ExitOK && code != ExitError {
				t.Errorf("%s: exit %d:\n%s", strings.Join(args, " "), code, all)
			}
		}
	}
	// The round trips above really logged in: a wrong password would have
	// made verify exit 1 and proved nothing about printing it.
	code, out, _ := productRun(t, root, rec, "", "--root", b.root, "verify", "--user", b.user)
	if code != ExitOK {
		t.Fatalf("verify --user with the real password: exit %d\n%s", code, out)
	}
}

// TestSecondRunSaysUnchanged runs each single-step command that writes,
// twice: the second run exits 0 and says "unchanged" for what it manages,
// and reports nothing created, updated or removed.
func TestSecondRunSaysUnchanged(t *testing.T) {
	root := t.TempDir()
	rec := installedRecorder()
	tmp := t.TempDir()
	users := writeTestFile(t, filepath.Join(tmp, "users.txt"), "bob:bob-pw\ncarol:carol-pw\n")
	spec := writeTestFile(t, filepath.Join(tmp, "broker.yaml"), productSpec)
	t.Setenv(PasswordEnv, "alice-pw")
	t.Setenv(P12PasswordEnv, "bundle-pw")
	for _, args := range [][]string{
		{"user", "add", "alice"},
		{"user", "import", users},
		{"user", "rm", "carol"},
		{"cert", "ca"},
		{"cert", "server"},
		{"cert", "client", "dev1"},
		{"cert", "client", "phone", "--p12", "--out", filepath.Join(tmp, "phone")},
		{"cert", "renew"},
		{"cert", "import", "--cert", filepath.Join(root, "etc/mosquitto/certs/server.crt"), "--key", filepath.Join(root, "etc/mosquitto/certs/server.key")},
		{"cert", "export", "--out", "/etc/ca-export.pem"},
		{"conf", "write"},
		{"acl", "allow", "alice", "home/#", "--read"},
		{"acl", "deny", "alice", "home/alarm/#"},
		{"acl", "pattern", "users/%u/#", "--readwrite", "--no-reload"},
		{"acl", "rm", "alice", "home/#"},
		{"acl", "rm", "alice"},
		{"install"},
		{"apply", "-f", spec, "--yes"},
	} {
		name := strings.Join(args, " ")
		if code, out, errOut := productRun(t, root, rec, "", args...); code != ExitOK {
			t.Fatalf("%s: first run: exit %d\n%s%s", name, code, out, errOut)
		}
		code, out, errOut := productRun(t, root, rec, "", args...)
		if code != ExitOK {
			t.Errorf("%s: second run: exit %d\n%s%s", name, code, out, errOut)
		}
		// apply sums up its steps in one line instead of one per file.
		if !strings.Contains(out, "unchanged") && !strings.Contains(out, "No changes.") {
			t.Errorf("%s: the second run doesn't say unchanged:\n%s", name, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "+ ") || strings.HasPrefix(line, "~ ") || strings.HasPrefix(line, "- ") {
				t.Errorf("%s: the second run reports a change: %q", name, line)
			}
		}
	}
}

// TestBadInputOneLineNothingChanged gives each command bad input: the error
// is one line, "mosqprov: " then the field, exit 3, and nothing under the
// root changed (bytes, modes and modification times).
func TestBadInputOneLineNothingChanged(t *testing.T) {
	root := t.TempDir()
	rec := installedRecorder()
	tmp := t.TempDir()
	spec := writeTestFile(t, filepath.Join(tmp, "broker.yaml"), productSpec)
	badSpec := writeTestFile(t, filepath.Join(tmp, "bad.yaml"), "hostname: localhost\nlisteners: [{type: mqtt, port: 99999}]\n")
	badLine := writeTestFile(t, filepath.Join(tmp, "bad.txt"), "bob:pw\nno colon here\n")
	t.Setenv(PasswordEnv, "alice-pw")
	// Something to protect: a converged installation.
	if code, out, errOut := productRun(t, root, rec, "", "apply", "-f", spec, "--yes"); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	before := treeDigest(t, root)
	for _, tc := range []struct {
		field string
		args  []string
	}{
		{"username", []string{"user", "add", "a:b"}},
		{"--hash", []string{"user", "add", "alice", "--hash", "md5"}},
		{"--iterations", []string{"user", "add", "alice", "--iterations", "0"}},
		{"--file", []string{"user", "add", "alice", "--file", "passwd"}},
		{"FILE", []string{"user", "import", filepath.Join(tmp, "missing.txt")}},
		{badLine + " line 2", []string{"user", "import", badLine}},
		{"username", []string{"user", "rm", "a:b"}},
		{"--key-type", []string{"cert", "ca", "--key-type", "dsa"}},
		{"--ca-dir", []string{"cert", "ca", "--ca-dir", "ca"}},
		{"--ca-name", []string{"cert", "ca", "--force", "--ca-name", "a\nb"}},
		{"--name", []string{"cert", "server", "--name", "bad name"}},
		{"--ip", []string{"cert", "server", "--ip", "999.1.1.1"}},
		{"--days", []string{"cert", "server", "--days", "0"}},
		{"NAME", []string{"cert", "client", "a/b"}},
		{"--format", []string{"cert", "export", "--format", "jpeg"}},
		{"--out", []string{"cert", "export", "--out", "/no/such/folder/ca.pem"}},
		{"--cert", []string{"cert", "import", "--cert", filepath.Join(tmp, "none.crt"), "--key", filepath.Join(tmp, "none.key")}},
		{"--warn", []string{"cert", "status", "--warn", "-3"}},
		{"--listener", []string{"conf", "write", "--listener", "mqtt:99999"}},
		{"--tls-version", []string{"conf", "write", "--tls-version", "tlsv1.0"}},
		{"--password-file", []string{"conf", "write", "--password-file", "x\ny"}},
		{"--conf", []string{"conf", "write", "--conf", "relative.conf"}},
		{"TOPIC", []string{"acl", "allow", "alice", "x\ny", "--read"}},
		{"TOPIC", []string{"acl", "allow", "alice", "x/#/y", "--read"}},
		{"--read", []string{"acl", "allow", "alice", "x", "--read", "--write"}},
		{"--file", []string{"acl", "allow", "alice", "x", "--read", "--file", "acl"}},
		{"--lock-timeout", []string{"install", "--lock-timeout", "-1s"}},
		{"port", []string{"apply", "-f", badSpec, "--yes"}},
		{"port", []string{"plan", "-f", badSpec}},
		{"--timeout", []string{"verify", "--timeout", "-1s"}},
		{"--root", []string{"service", "restart"}},
		{"NAME", []string{"user", "verify"}},
		{"USER [TOPIC]", []string{"acl", "rm"}},
	} {
		name := strings.Join(tc.args, " ")
		code, out, errOut := productRun(t, root, rec, "", tc.args...)
		if code != ExitUsage {
			t.Errorf("%s: exit %d, want %d\n%s%s", name, code, ExitUsage, out, errOut)
		}
		if !strings.HasPrefix(errOut, "mosqprov: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.field) {
			t.Errorf("%s: want one line \"mosqprov: \" naming %s, got %q", name, tc.field, errOut)
		}
		if after := treeDigest(t, root); after != before {
			t.Errorf("%s: changed files under the root", name)
			before = after
		}
	}
}

// treeDigest sums every path, mode, size, modification time and content
// under root, so any write shows.
func treeDigest(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	h.Write([]byte(strings.Join(lines, "\n")))
	return fmt.Sprintf("%x", h.Sum(nil))
}

var quotedWord = regexp.MustCompile(`'[^']*'|"[^"]*"`)

// TestEveryCommandHasExamplesThatParse holds each visible leaf command's
// --help to at least one example of itself, and every example line to the
// real command tree: a renamed flag or a wrong argument count fails here.
// (exampleArgs, from readme_test.go, reads the same lines in the README.)
func TestEveryCommandHasExamplesThatParse(t *testing.T) {
	newRoot := func() *cobra.Command {
		return NewRootCmd(NewApp(&IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}))
	}
	for _, name := range leafCommands() {
		if strings.HasPrefix(name, "completion") {
			continue // cobra's own, with cobra's help
		}
		leaf, _, err := newRoot().Find(strings.Fields(name))
		if err != nil {
			t.Fatal(err)
		}
		if !leaf.IsAvailableCommand() {
			continue // hidden (man, for packaging)
		}
		own := 0
		// One line per command: continuation lines joined, and each quoted
		// word made one word without blanks, as the shell would.
		example := strings.ReplaceAll(leaf.Example, "\\\n", " ")
		for _, line := range strings.Split(example, "\n") {
			line = quotedWord.ReplaceAllString(line, "quoted")
			for _, args := range exampleArgs(line) {
				cmd, rest, err := newRoot().Find(args)
				if err == nil {
					err = cmd.ParseFlags(rest)
				}
				if err == nil && cmd.Args != nil {
					err = cmd.Args(cmd, cmd.Flags().Args())
				}
				if err != nil {
					t.Errorf("%s: example %q: %v", name, strings.TrimSpace(line), err)
				}
				if cmd == nil || commandName(cmd) != name {
					continue
				}
				own++
			}
		}
		if own == 0 {
			t.Errorf("%q --help has no example of itself", name)
		}
	}
}

// TestRemoveFromMissingFileWritesNothing: removing from a password or ACL
// file that isn't there removes nothing, so it creates no file either.
func TestRemoveFromMissingFileWritesNothing(t *testing.T) {
	root := t.TempDir()
	before := treeDigest(t, root)
	for _, args := range [][]string{
		{"user", "rm", "bob"},
		{"acl", "rm", "alice"},
		{"acl", "rm", "--anonymous", "public/#"},
		{"acl", "rm", "--pattern", "users/%u/#"},
	} {
		code, out, errOut := productRun(t, root, &system.Recorder{}, "", args...)
		if code != ExitOK || !strings.Contains(out, "unchanged") {
			t.Errorf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		if treeDigest(t, root) != before {
			t.Fatalf("%s wrote under the root", strings.Join(args, " "))
		}
	}
}

// TestDryRunWritesNothing runs each command that writes with --dry-run, on
// a converged installation and asking for a change: it says what it would
// do and leaves every file as it was.
func TestDryRunWritesNothing(t *testing.T) {
	root := t.TempDir()
	rec := installedRecorder()
	tmp := t.TempDir()
	spec := writeTestFile(t, filepath.Join(tmp, "broker.yaml"), productSpec)
	changed := writeTestFile(t, filepath.Join(tmp, "changed.yaml"), strings.Replace(productSpec, "port: 18830", "port: 18831", 1))
	users := writeTestFile(t, filepath.Join(tmp, "users.txt"), "bob:bob-pw\n")
	t.Setenv(PasswordEnv, "alice-pw")
	t.Setenv(P12PasswordEnv, "bundle-pw")
	for _, args := range [][]string{{"apply", "-f", spec, "--yes"}, {"cert", "client", "dev1"}} {
		if code, out, errOut := productRun(t, root, rec, "", args...); code != ExitOK {
			t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	before := treeDigest(t, root)
	for _, args := range [][]string{
		{"user", "add", "carol"},
		{"user", "rm", "alice"},
		{"user", "import", users},
		{"cert", "ca", "--force"},
		{"cert", "server", "--name", "other.example"},
		{"cert", "client", "dev2", "--p12"},
		{"cert", "export", "--out", "/etc/ca-export.pem"},
		{"conf", "write", "--listener", "mqtts"},
		{"acl", "allow", "bob", "home/#", "--read"},
		{"acl", "rm", "alice"},
		{"apply", "-f", changed, "--yes"},
	} {
		name := strings.Join(args, " ")
		code, out, errOut := productRun(t, root, rec, "", append([]string{"--dry-run"}, args...)...)
		if code != ExitOK {
			t.Errorf("%s: exit %d\n%s%s", name, code, out, errOut)
		}
		if !strings.Contains(out, "would ") {
			t.Errorf("%s: doesn't say what it would do:\n%s", name, out)
		}
		if after := treeDigest(t, root); after != before {
			t.Errorf("%s --dry-run changed files under the root", name)
			before = after
		}
	}
}
