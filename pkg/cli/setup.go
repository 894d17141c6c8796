package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/wizard"
)

type setupOptions struct {
	*App
	// Prompter asks the questions; nil means the terminal (wizard.Terminal).
	Prompter wizard.Prompter
	// Host gives the defaults; nil means this machine.
	Host wizard.Host
	// Pager shows the full plan when the person asks for it; nil means
	// $PAGER or less on a terminal, else the plain text on stdout.
	Pager func(text string) error
	// Width is the terminal's width in columns; 0 asks the terminal.
	Width int
}

func newSetupCmd(a *App) *cobra.Command {
	o := &setupOptions{App: a}
	return &cobra.Command{
		Use:   "setup",
		Short: "Answer a few questions, see the plan, and apply",
		Long: `setup asks, with defaults detected from this machine (and from
` + layout.Spec + ` when it exists): the host name and other names clients use,
the IP addresses for the certificate, the listeners (each with its security
note), the key type, the first users and their passwords (hidden, asked twice;
only a hash is stored), and whether to limit users to their own topics.

It then shows the plan, one line per step with its summary line, sized for an
80x24 screen; "p" shows the resulting broker.yaml and every change in full
(through $PAGER or less). On "y" it writes ` + layout.Spec + ` and applies it,
exactly as ` + "`mosqprov apply`" + ` would, and names the addresses clients use, the CA
certificate and a mosquitto_sub line for the user just added.
Ctrl-C or "no" at any point changes nothing. It needs a terminal; for scripts,
write broker.yaml and run ` + "`mosqprov apply -f broker.yaml --yes`" + `.`,
		Example: `  sudo mosqprov setup
  mosqprov setup --root /tmp/image --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runSetup(cmd.Context(), o) },
	}
}

func runSetup(ctx context.Context, o *setupOptions) error {
	a := o.App
	if a.JSON() {
		return errs.Invalid("--output", "setup asks questions on a terminal; for json, use `mosqprov plan -o json` and `mosqprov apply -o json --yes`")
	}
	p, err := o.prompter()
	if err != nil {
		return err
	}
	host := o.Host
	if host == nil {
		host = a.Sys
	}
	fmt.Fprint(a.IO.Out, setupIntro)
	start, current, err := loadStartSpec(a)
	if err != nil {
		return err
	}
	s, err := wizard.Run(p, host, start)
	if err != nil {
		return err
	}
	data, err := spec.Marshal(s)
	if err != nil {
		return err
	}

	// The plan starts with broker.yaml, which setup writes before it
	// applies: its lines and its summary are then the apply's.
	sameSpec := bytes.Equal(current, data)
	planned, files, err := computePlan(ctx, a, s, func(sys system.System) ([]system.Change, error) {
		return writeSpec(sys, data)
	})
	if err != nil {
		return err
	}
	if !planned.Changed {
		// Asking "write and apply?" would offer to do nothing.
		fmt.Fprintln(a.IO.Out, "\nNothing to do: broker.yaml and the broker already match these answers.")
		return nil
	}
	// Until the person says yes the plan speaks in the conditional,
	// exactly as `mosqprov plan` shows it.
	saved := a.Globals.DryRun
	a.Globals.DryRun = true
	full := fullPlan(a, data, planned, files)
	var notes strings.Builder
	showUnmanaged(a, planned) // warnings on stderr, the unmanaged users' note on stdout
	if !brokerChanges(planned) {
		fmt.Fprintln(&notes, "The broker already matches these answers; only broker.yaml changes.")
	}
	if current != nil && !sameSpec {
		fmt.Fprintf(&notes, "%s will be replaced (comments in it are not kept).\n", layout.Spec)
	}
	if a.Sys.IsDryRun() {
		// Nothing to ask: the whole plan, as `mosqprov plan` shows it.
		fmt.Fprint(a.IO.Out, full+notes.String())
		fmt.Fprintln(a.IO.Out, "Dry run: nothing was written.")
		a.Globals.DryRun = saved
		return nil
	}
	fmt.Fprint(a.IO.Out, shortPlan(planned, o.width(), planLine(a, planned))+notes.String())
	a.Globals.DryRun = saved

	ok, err := confirmSetup(p, func() error { return o.page(full) })
	if err != nil {
		return err
	}
	// A Ctrl-C outside a question (the terminal is in raw mode only while
	// one is asked) arrives as a signal and cancels ctx: honour it too.
	if !ok || ctx.Err() != nil {
		return errs.ErrInterrupted
	}
	written, err := writeSpec(a.Sys, data)
	if err != nil {
		return err
	}
	a.Add(written...)
	if err := runApply(ctx, &applyOptions{App: a, Yes: true}); err != nil {
		return err
	}
	printNextSteps(a.IO.Out, s, newUser(start, s))
	return nil
}

// brokerChanges reports whether the plan changes more than broker.yaml.
func brokerChanges(res *plan.Result) bool {
	for _, st := range res.Steps {
		if st.Name == stepSpec {
			continue
		}
		if plan.Count(st.Changes) != (plan.Summary{}) {
			return true
		}
	}
	return false
}

// prompter is the one the options give (tests), else the terminal's;
// without a terminal there is nobody to ask.
func (o *setupOptions) prompter() (wizard.Prompter, error) {
	if o.Prompter != nil {
		return o.Prompter, nil
	}
	in, inOK := o.IO.In.(wizard.FileReader)
	out, outOK := o.IO.Out.(wizard.FileWriter)
	if !o.IO.InIsTerminal || !inOK || !outOK {
		return nil, errs.Invalid("stdin", "not a terminal, and setup asks questions; write broker.yaml (see examples/) and run `mosqprov apply -f broker.yaml --yes`")
	}
	return wizard.NewTerminal(in, out, o.IO.ErrOut), nil
}

// loadStartSpec is the existing broker.yaml, parsed and as bytes, or nils
// when there is none. A broken one stops setup: starting afresh would
// silently drop what it holds.
func loadStartSpec(a *App) (*spec.Spec, []byte, error) {
	path := specPath(a, "")
	if _, err := os.Stat(path); err != nil {
		return nil, nil, nil
	}
	s, err := spec.Load(a.Sys, path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (fix it, or move it away to start afresh)", err)
	}
	data, err := a.Sys.ReadFile(layout.Spec)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", layout.Spec, err)
	}
	a.Infof("Starting from %s.", path)
	return s, data, nil
}

// writeSpec writes broker.yaml root-only: it holds password hashes.
func writeSpec(sys system.System, data []byte) ([]system.Change, error) {
	action, err := sys.EnsureDir(layout.StateDir, system.Attr{Mode: 0o755, User: "root", Group: "root"})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", layout.StateDir, err)
	}
	changes := []system.Change{system.NewChange("mosqprov folder", layout.StateDir, action, "")}
	if action, err = sys.WriteFile(layout.Spec, data, layout.RootOnly); err != nil {
		return changes, fmt.Errorf("write %s: %w", layout.Spec, err)
	}
	return append(changes, system.NewChange("spec", layout.Spec, action, "")), nil
}

// hashLine is a user's hash in broker.yaml as spec.Marshal writes it.
var hashLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^(\s+hash: )(\$\d+\$[^$\s]*\$)\S+$`) })

// shortenHashes keeps a hash's type and iterations ($7$1000$): the whole
// 100-character value wraps on an 80-column terminal and tells a person
// nothing, and the plan masks it the same way.
func shortenHashes(yaml []byte) []byte {
	return hashLine().ReplaceAll(yaml, []byte("${1}${2}…"))
}
