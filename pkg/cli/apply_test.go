package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func applyTestApp(t *testing.T, root, input string, terminal bool) (*App, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := NewApp(&IOStreams{In: strings.NewReader(input), Out: &out, ErrOut: &errOut, InIsTerminal: terminal})
	a.Sys = system.NewReal(root, system.WithRunner(&system.Recorder{}))
	if err := a.init("apply"); err != nil {
		t.Fatal(err)
	}
	return a, &out, &errOut
}

const confirmSpec = "hostname: pi.home.arpa\nlisteners: [{type: mqtt}, {type: mqtts}]\nusers:\n  - {name: blinds, hash: \"$7$101$74G1pCqSt4EPbk0k$l5MijUNV9xjqd00TZnXHrKfdQLEzw0r1/XtNYNjAtCSyFhoAf7c0oIpZunEjhWIbesnOMGnfc7atQzv+bWZ7qA==\"}\n"

// On a terminal apply shows the plan and asks; "no" changes nothing (exit
// 130), "yes" applies.
func TestApplyConfirm(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(t.TempDir(), "broker.yaml")
	os.WriteFile(file, []byte(confirmSpec), 0o644)

	a, out, errOut := applyTestApp(t, root, "n\n", true)
	err := runApply(context.Background(), &applyOptions{App: a, File: file})
	if !errors.Is(err, errs.ErrInterrupted) || exitCode(err) != ExitInterrupted {
		t.Fatalf("answer no: %v", err)
	}
	if !strings.Contains(out.String(), "+ password file: would create /etc/mosquitto/passwd") ||
		!strings.Contains(out.String(), "+blinds:$7$(hash masked)") || !strings.Contains(errOut.String(), "Apply these changes? [y/N] ") {
		t.Fatalf("plan shown:\n%s\n%s", out, errOut)
	}
	if _, err := os.Stat(filepath.Join(root, "etc")); !os.IsNotExist(err) {
		t.Fatal("answering no wrote something")
	}

	a, out, _ = applyTestApp(t, root, "y\n", true)
	if err := runApply(context.Background(), &applyOptions{App: a, File: file}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "+ password file: created /etc/mosquitto/passwd") || !a.report.Changed {
		t.Fatalf("answer yes:\n%s", out)
	}

	// Converged: no question, even on a terminal.
	a, out, errOut = applyTestApp(t, root, "", true)
	if err := runApply(context.Background(), &applyOptions{App: a, File: file}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errOut.String(), "Apply these changes") || a.report.Changed || !strings.Contains(out.String(), "No changes.") {
		t.Fatalf("converged:\n%s\n%s", out, errOut)
	}
}

// Flags and arguments of plan and apply: usage mistakes exit 3 before
// anything is read; -f and --yes bind.
func TestPlanApplyFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"plan", "extra"}, ExitUsage, `unknown command "extra" for "mosqprov plan"`},
		{[]string{"apply", "--yes=maybe"}, ExitUsage, "invalid argument"},
		{[]string{"plan", "--detailed-exitcode", "-f"}, ExitUsage, "flag needs an argument"},
		{[]string{"apply", "-y", "-f", "/nonexistent/broker.yaml"}, ExitUsage, "spec: /nonexistent/broker.yaml does not exist"},
		{[]string{"plan", "--root", "/nonexistent-root"}, ExitUsage, "spec: /nonexistent-root/etc/mosqprov/broker.yaml does not exist"},
	} {
		var out, errOut bytes.Buffer
		a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		if code := Run(context.Background(), a, tc.args); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}
