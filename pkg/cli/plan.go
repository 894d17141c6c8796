package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

type planOptions struct {
	*App
	File             string
	DetailedExitcode bool
}

func newPlanCmd(a *App) *cobra.Command {
	o := &planOptions{App: a}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change to make the broker match broker.yaml",
		Long: `plan reads broker.yaml (default /etc/mosqprov/broker.yaml under --root) and
shows every change apply would make, in order: package, CA, server
certificate, passwords, ACL, configuration, service. + create, ~ change,
- remove; text files as unified diffs with password hashes masked. It reads
everything and writes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runPlan(cmd.Context(), o) },
	}
	cmd.Flags().StringVarP(&o.File, "file", "f", "", "the spec to plan (default "+layout.Spec+" under --root)")
	cmd.Flags().BoolVar(&o.DetailedExitcode, "detailed-exitcode", false, "exit 0 when there is nothing to change, 2 when there is, 1 on error")
	return cmd
}

// specPath is -f, or the default spec under --root, as a path on this machine.
func specPath(a *App, file string) string {
	if file != "" {
		return file
	}
	return a.Sys.HostPath(layout.Spec)
}

// dryRunOf is the System a plan runs on: the App's own when it already is a
// dry run, else one over the App's real System.
func dryRunOf(sys system.System) (*system.DryRun, error) {
	switch s := sys.(type) {
	case *system.DryRun:
		return s, nil
	case *system.Real:
		return system.NewDryRun(s), nil
	}
	return nil, fmt.Errorf("plan: can't make a dry run of %T", sys)
}

// planOutput is plan's (and apply's) json result.
type planOutput struct {
	Spec string `json:"spec"`
	*plan.Result
	Files []plan.FileDiff `json:"files"`
}

// computePlan runs the engine on a dry run of the App's System.
func computePlan(ctx context.Context, a *App, s *spec.Spec) (*plan.Result, []plan.FileDiff, error) {
	dry, err := dryRunOf(a.Sys)
	if err != nil {
		return nil, nil, err
	}
	svc := *a.Service
	svc.Sys = dry
	res, err := plan.Converge(ctx, dry, s, plan.Options{Service: &svc})
	if err != nil {
		return nil, nil, err
	}
	return res, plan.Diffs(dry.Changes()), nil
}

func runPlan(ctx context.Context, o *planOptions) error {
	a := o.App
	s, err := spec.Load(a.Sys, o.File)
	if err != nil {
		return err
	}
	res, files, err := computePlan(ctx, a, s)
	if err != nil {
		return err
	}
	// A plan speaks in the conditional, whatever --dry-run says.
	a.Globals.DryRun = true
	a.report.DryRun = true
	showPlan(a, res, files)
	a.Result(planOutput{Spec: s.File(), Result: res, Files: files}, func(w io.Writer) {
		if res.Changed {
			fmt.Fprintf(w, "Plan: %s%s.\n", res.Summary, settleNote(res))
		} else {
			fmt.Fprintf(w, "No changes. The broker matches %s.\n", s.File())
		}
	})
	if o.DetailedExitcode && res.Changed {
		return errs.ErrChangesPresent
	}
	return nil
}

// showPlan reports the changes to make, each followed (in text) by its
// file's diff; no-ops are left out.
func showPlan(a *App, res *plan.Result, files []plan.FileDiff) {
	byPath := map[string]plan.FileDiff{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	for _, c := range res.Changes() {
		if !c.Changed {
			continue
		}
		a.Add(c)
		if f, ok := byPath[c.Path]; ok && !a.JSON() {
			printDiff(a.IO.Out, f)
			delete(byPath, c.Path)
		}
	}
	showUnmanaged(a, res)
}

func showUnmanaged(a *App, res *plan.Result) {
	for _, w := range dedupe(res.Warnings) {
		a.Warn("%s", w)
	}
	if len(res.Unmanaged) > 0 && !a.JSON() {
		fmt.Fprintf(a.IO.Out, "  users in the password file but not in the spec, left alone: %s (prune_users: true removes them)\n", strings.Join(res.Unmanaged, ", "))
	}
}

func printDiff(w io.Writer, f plan.FileDiff) {
	if f.Note != "" && f.Diff == "" {
		fmt.Fprintf(w, "    (%s)\n", f.Note)
		return
	}
	for _, line := range strings.SplitAfter(strings.TrimRight(f.Diff, "\n"), "\n") {
		fmt.Fprint(w, "    "+line)
	}
	fmt.Fprintln(w)
}

// settleNote says what the broker will be asked to do at the end.
func settleNote(res *plan.Result) string {
	if n := res.Need.String(); n != "none" {
		return "; then one " + n + " of the broker"
	}
	return ""
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
