package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/safe"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
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
		Example: `  sudo mosqprov plan
  mosqprov plan -f broker.yaml --root /srv/pi-image
  sudo mosqprov plan --detailed-exitcode -o json > plan.json   # exit 2: apply has changes to make`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runPlan(cmd.Context(), o) },
	}
	bindSpecFile(cmd, &o.File, "plan")
	cmd.Flags().BoolVar(&o.DetailedExitcode, "detailed-exitcode", false, "exit 0 when there is nothing to change, 2 when there is, 1 on any error (as Terraform)")
	return cmd
}

// bindSpecFile binds -f, the spec plan and apply read.
func bindSpecFile(cmd *cobra.Command, file *string, verb string) {
	cmd.Flags().StringVarP(file, "file", "f", "", "the spec `FILE` to "+verb+" (default "+layout.Spec+" under --root)")
}

// specPath is -f, or the default spec under --root, as a path on this machine.
func specPath(a *App, file string) string {
	if file != "" {
		return file
	}
	return a.Sys.HostPath(layout.Spec)
}

// planOutput is plan's (and apply's) json result.
type planOutput struct {
	Spec string `json:"spec"`
	*plan.Result
	Files []plan.FileDiff `json:"files"`
}

// computePlan runs the engine on a dry run of the App's System. pre, when
// set, runs first on the same dry run (setup writes broker.yaml before it
// applies) and its changes lead the plan. The broker's reload or restart, when
// apply will do one, ends the plan as a line of its own: the summary counts
// exactly the lines the plan shows, and apply's summary then counts the same.
func computePlan(ctx context.Context, a *App, s *spec.Spec, pre func(system.System) ([]system.Change, error)) (*plan.Result, []plan.FileDiff, error) {
	dry := system.NewDryRun(a.Sys)
	var first []system.Change
	if pre != nil {
		var err error
		if first, err = pre(dry); err != nil {
			return nil, nil, err
		}
	}
	svc := *a.Service
	svc.Sys = dry
	res, err := plan.Converge(ctx, dry, s, plan.Options{Service: &svc})
	if err != nil {
		return nil, nil, err
	}
	if len(first) > 0 {
		res.Prepend(stepSpec, first...)
	}
	if c, ok := plannedSettle(ctx, &svc, res); ok {
		res.Append(stepSettle, c)
	}
	// pre's files are shown by its caller (setup shows broker.yaml with
	// its hashes shortened); their diffs would show the hashes whole.
	files := []plan.FileDiff{}
	for _, f := range plan.PlannedDiffs(dry.Changes()) {
		if !slices.ContainsFunc(first, func(c system.Change) bool { return c.Path == f.Path }) {
			files = append(files, f)
		}
	}
	return res, files, nil
}

// Steps the command side adds to the engine's.
const (
	stepSpec   = "spec"
	stepSettle = "broker"
)

// plannedSettle is the reload or restart apply will end with, as a plan
// line: none when nothing the broker reads changes, when the service is left
// alone (the summary line says why), or when the broker is stopped and not
// about to be installed (it reads the new files when it starts).
func plannedSettle(ctx context.Context, svc *systemd.Service, res *plan.Result) (system.Change, bool) {
	if res.Need == system.NeedNothing {
		return system.Change{}, false
	}
	if ok, _ := svc.Manageable(); !ok {
		return system.Change{}, false
	}
	if !installs(res) && !svc.IsActive(ctx) {
		return system.Change{}, false
	}
	action, verb := system.Reload, "reload"
	if res.Need == system.NeedRestart {
		action, verb = system.Restart, "restart"
	}
	why := "it reads the changed files on a " + verb
	return system.NewChange("service "+svc.Unit, "", action, why), true
}

// installs reports whether the plan installs the broker's package (whose
// install starts the broker, which apply then restarts on the new files).
func installs(res *plan.Result) bool {
	for _, st := range res.Steps {
		if st.Name != plan.StepPackage {
			continue
		}
		for _, c := range st.Changes {
			if c.Changed {
				return true
			}
		}
	}
	return false
}

func runPlan(ctx context.Context, o *planOptions) error {
	err := planSpec(ctx, o)
	if o.DetailedExitcode && err != nil && !errors.Is(err, errs.ErrChangesPresent) {
		// Terraform's contract, which CI scripts test with `case $?`: with
		// --detailed-exitcode every error is 1, a bad spec included, so
		// no error can pass for "no changes" or "changes".
		return exitOne{err}
	}
	return err
}

// exitOne is an error whose kind (and so its exit code) is hidden: exit 1.
type exitOne struct{ err error }

func (e exitOne) Error() string { return e.err.Error() }

// planSpec loads the spec, computes its plan and shows it.
func planSpec(ctx context.Context, o *planOptions) error {
	a := o.App
	s, err := spec.Load(a.Sys, o.File)
	if err != nil {
		return err
	}
	res, files, err := computePlan(ctx, a, s, nil)
	if err != nil {
		return err
	}
	// A plan speaks in the conditional, whatever --dry-run says.
	a.Globals.DryRun = true
	a.report.DryRun = true
	showPlan(a, res, files)
	a.Result(planOutput{Spec: s.File(), Result: res, Files: files}, func(w io.Writer) {
		if res.Changed {
			fmt.Fprintln(w, planLine(a, res))
		} else {
			fmt.Fprintf(w, "No changes. The broker matches %s.\n", s.File())
		}
	})
	if o.DetailedExitcode && res.Changed {
		return errs.ErrChangesPresent
	}
	return nil
}

// showPlan reports a plan: in text, as writePlan prints it; in json, the
// changes to make go to the report (no-ops left out, as in text).
func showPlan(a *App, res *plan.Result, files []plan.FileDiff) {
	if a.JSON() {
		for _, c := range res.Changes() {
			if c.Changed {
				a.Add(c)
			}
		}
	} else {
		writePlan(a.IO.Out, res, files)
	}
	showUnmanaged(a, res)
}

// writePlan prints what a run would change, the way Terraform users read a
// plan: each change to make with its glyph (no-ops left out) and its
// file's diff under it; the caller adds the one summary line (planLine).
// plan, apply's question and setup all show a plan with it.
func writePlan(w io.Writer, res *plan.Result, files []plan.FileDiff) {
	diffs := map[string]plan.FileDiff{}
	for _, f := range files {
		diffs[f.Path] = f
	}
	for _, c := range res.Changes() {
		if !c.Changed {
			continue
		}
		fmt.Fprintln(w, safe.Escape(formatChange(c, true)))
		if f, ok := diffs[c.Path]; ok && c.Path != "" {
			printDiff(w, f)
			delete(diffs, c.Path) // a file changed twice shows its diff once
		}
	}
}

// planLine is a plan's summary line.
func planLine(a *App, res *plan.Result) string {
	return fmt.Sprintf("Plan: %s%s.", res.Summary, settleNote(a.Service, res))
}

func showUnmanaged(a *App, res *plan.Result) {
	for _, w := range dedupe(res.Warnings) {
		a.Warn("%s", w)
	}
	if len(res.Unmanaged) > 0 && !a.JSON() {
		fmt.Fprintf(a.IO.Out, "  users in the password file but not in the spec, left alone: %s (prune_users: true removes them)\n", safe.Escape(strings.Join(res.Unmanaged, ", ")))
	}
}

func printDiff(w io.Writer, f plan.FileDiff) {
	if f.Note != "" && f.Diff == "" {
		fmt.Fprintf(w, "    (%s)\n", safe.Escape(f.Note))
		return
	}
	for _, line := range strings.SplitAfter(strings.TrimRight(f.Diff, "\n"), "\n") {
		fmt.Fprint(w, "    "+safe.EscapeText(line))
	}
	fmt.Fprintln(w)
}

// settleNote says why the broker won't be reloaded or restarted at the end
// (under --root, or where systemd isn't running); when it will be, the plan
// shows that as a line of its own (plannedSettle).
func settleNote(svc *systemd.Service, res *plan.Result) string {
	if res.Need == system.NeedNothing {
		return ""
	}
	if ok, why := svc.Manageable(); !ok {
		return "; the broker's " + res.Need.String() + " is skipped: " + why
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
