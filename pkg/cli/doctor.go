package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/doctor"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/spec"
)

type doctorOptions struct {
	*App
	File string
}

func newDoctorCmd(a *App) *cobra.Command {
	o := &doctorOptions{App: a}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the installation from the inside and say how to fix each problem",
		Long: `doctor reads the broker's files and asks the package manager and systemd,
and reports each problem with what is wrong, why it matters and the command
that fixes it: owners and modes of the keys, password and ACL files; password
file lines the broker ignores; plain listeners reachable from the network;
the 2.0.11 WebSocket bind issue; the certificate's names against broker.yaml
and this machine's addresses; expiry; files changed by hand since the last
apply; listener clashes; the package and the service.

It changes nothing. Exit code 1 when a finding of severity error exists.`,
		Example: `  sudo mosqprov doctor
  sudo mosqprov doctor -o json | jq '.result.findings[] | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDoctor(cmd.Context(), o)
		},
	}
	bindSpecFile(cmd, &o.File, "check against")
	return cmd
}

func runDoctor(ctx context.Context, o *doctorOptions) error {
	c := &doctor.Checker{Sys: o.Sys, Service: o.Service, Host: o.Sys}
	c.SpecPath = o.File
	if c.SpecPath == "" {
		c.SpecPath = o.Sys.HostPath(layout.Spec)
	}
	var specErr error
	_, statErr := os.Stat(c.SpecPath)
	if statErr == nil || o.File != "" {
		c.Spec, specErr = spec.Load(o.Sys, c.SpecPath)
		// A spec the user named that isn't there is a mistake in the
		// command line (exit 3, as plan and verify say), not a finding.
		if specErr != nil && (!errs.IsInput(specErr) || errors.Is(statErr, fs.ErrNotExist)) {
			return specErr
		}
	}
	if c.Spec != nil && c.Spec.StatusReader {
		c.BridgeStates = statusBridgeStates(o.Sys, c.Spec)
	}
	rep := c.Run(ctx)
	if specErr != nil {
		rep.Findings = append([]doctor.Finding{{ID: "spec-invalid", Severity: doctor.Error, Subject: c.SpecPath,
			Problem: oneLine(specErr.Error()),
			Why:     "apply and setup refuse it, and doctor checked without it",
			Fix:     "fix the line it names (`mosqprov plan` checks it again)"}}, rep.Findings...)
	}
	o.Result(rep, func(w io.Writer) {
		if root := o.Sys.Root(); root != "/" {
			// Findings name the broker's paths; the files are under --root.
			fmt.Fprintf(w, "Checked the files under %s; paths and fixes are as on the broker's machine (add --root %s to run a mosqprov fix on this copy).\n\n", root, root)
		}
		printDoctor(w, rep)
	})
	if rep.Count(doctor.Error) > 0 {
		return errs.ErrCheckFailed
	}
	return nil
}

func printDoctor(w io.Writer, rep doctor.Report) {
	for _, f := range rep.Facts {
		fmt.Fprintf(w, "%s: %s\n", f.Name, f.Value)
	}
	if len(rep.Facts) > 0 {
		fmt.Fprintln(w)
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%-7s %s", f.Severity, f.ID)
		if f.Subject != "" {
			fmt.Fprintf(w, "  %s", f.Subject)
		}
		fmt.Fprintf(w, "\n  %s\n  why: %s\n  fix: %s\n", f.Problem, f.Why, f.Fix)
		for _, d := range f.Detail {
			fmt.Fprintf(w, "  | %s\n", d)
		}
		fmt.Fprintln(w)
	}
	errN, warnN := rep.Count(doctor.Error), rep.Count(doctor.Warning)
	if errN+warnN == 0 {
		fmt.Fprintln(w, "No problems found.")
		return
	}
	fmt.Fprintf(w, "%s, %s\n", doctorCount(errN, "error"), doctorCount(warnN, "warning"))
}

func doctorCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
