package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

type applyOptions struct {
	*App
	File string
	Yes  bool
}

func newApplyCmd(a *App) *cobra.Command {
	o := &applyOptions{App: a}
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make the broker match broker.yaml",
		Long: `apply makes the broker match broker.yaml (default /etc/mosqprov/broker.yaml
under --root): package, CA, server certificate, passwords, ACL, configuration,
service, in that order, then at most one reload or restart of the broker; if
it doesn't come back, this run's files are restored. It shows the plan and asks
first on a terminal; --yes skips the question (required without a terminal).
A second apply changes nothing, writes nothing and restarts nothing.`,
		Example: `  sudo mosqprov apply                          # shows the plan, asks, applies
  sudo mosqprov apply -f broker.yaml --yes     # scripts, Ansible, cloud-init
  sudo mosqprov apply --yes -o json | jq .changed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runApply(cmd.Context(), o) },
	}
	bindSpecFile(cmd, &o.File, "apply")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "apply without asking")
	return cmd
}

func runApply(ctx context.Context, o *applyOptions) error {
	a := o.App
	s, err := spec.Load(a.Sys, o.File)
	if err != nil {
		return err
	}
	// The plan first: to show and ask, and so a converged broker is left
	// entirely alone (not even a lock is taken).
	planned, files, err := computePlan(ctx, a, s, nil)
	if err != nil {
		return err
	}
	if a.Sys.IsDryRun() {
		showPlan(a, planned, files)
		a.Result(planOutput{Spec: s.File(), Result: planned, Files: files}, func(w io.Writer) {
			fmt.Fprintln(w, applySummary(a, planned, true, s))
		})
		return nil
	}
	if !planned.Changed {
		addApplied(a, planned.Changes())
		showUnmanaged(a, planned)
		planned.Summary = plan.Count(a.report.Changes) // setup's broker.yaml
		a.Result(planOutput{Spec: s.File(), Result: planned, Files: []plan.FileDiff{}}, func(w io.Writer) {
			fmt.Fprintln(w, applySummary(a, planned, false, s))
		})
		return nil
	}
	if !o.Yes {
		if err := confirmApply(a, planned, files); err != nil {
			return err
		}
	}
	res, err := plan.Converge(ctx, a.Sys, s, plan.Options{Service: a.Service, Progress: a.stepProgress()})
	if res != nil {
		addApplied(a, res.Changes())
	}
	if err != nil {
		// Files already written stay (each is whole); the broker still gets
		// the one reload or restart they need, or they are rolled back.
		if res != nil && res.Need != system.NeedNothing && len(a.Sys.Changes()) > 0 {
			a.Need(res.Need)
			if serr := a.Settle(ctx); serr != nil {
				return fmt.Errorf("%w; then: %w", err, serr)
			}
		}
		return err
	}
	showUnmanaged(a, res)
	a.Need(res.Need)
	if err := a.Settle(ctx); err != nil {
		return err
	}
	// The summary counts what this run printed: every file, the broker's
	// restart, and setup's broker.yaml, as its plan did.
	res.Summary = plan.Count(a.report.Changes)
	a.Result(planOutput{Spec: s.File(), Result: res, Files: plan.Diffs(a.Sys.Changes())}, func(w io.Writer) {
		fmt.Fprintln(w, applySummary(a, res, false, s))
	})
	return nil
}

// addApplied reports what apply did. Text shows what changed, as Terraform
// does (--verbose adds the unchanged lines; the summary line says the rest);
// json lists every step's outcome, unchanged ones included.
func addApplied(a *App, changes []system.Change) {
	for _, c := range changes {
		if c.Changed || a.JSON() || a.Globals.Verbose {
			a.Add(c)
		}
	}
}

// confirmApply shows the plan and asks; without a terminal it asks for --yes.
func confirmApply(a *App, planned *plan.Result, files []plan.FileDiff) error {
	switch {
	case a.JSON():
		return errs.Invalid("--yes", "there are changes to make (%s) and -o json can't ask to confirm them; see them with `mosqprov plan -o json`, then apply with --yes", planned.Summary)
	case !a.IO.InIsTerminal:
		return errs.Invalid("--yes", "there are changes to make (%s) and no terminal to confirm them on; see them with `mosqprov plan`, then apply with --yes", planned.Summary)
	}
	writePlan(a.IO.Out, planned, files)
	fmt.Fprintln(a.IO.Out, planLine(a, planned))
	fmt.Fprint(a.IO.ErrOut, "Apply these changes? [y/N] ")
	line, _ := bufio.NewReader(a.IO.In).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errs.ErrInterrupted
}

func applySummary(a *App, r *plan.Result, dryRun bool, s *spec.Spec) string {
	switch {
	case r.Summary == plan.Summary{}:
		return fmt.Sprintf("No changes. The broker matches %s: nothing written, nothing restarted.", s.File())
	case dryRun:
		return fmt.Sprintf("Dry run: %s%s; nothing was changed.", r.Summary, settleNote(a.Service, r))
	}
	return fmt.Sprintf("Apply complete: %d created, %d changed, %d removed.", r.Summary.Create, r.Summary.Change, r.Summary.Remove)
}
