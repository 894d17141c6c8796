package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs mosqprov with args and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, NewApp(SystemIO()), args)
}

// Run executes one command line on app and prints the outcome once.
func Run(ctx context.Context, app *App, args []string) int {
	root := NewRootCmd(app)
	root.SetArgs(args)
	root.SetIn(app.IO.In)
	root.SetOut(app.IO.Out)
	root.SetErr(app.IO.ErrOut)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && cmd != nil && !errors.As(err, new(*flagError)) && isCobraUsageError(err) {
		err = &flagError{err.Error()}
	}
	if err != nil && cmd != nil && app.report.Command == "" {
		app.begin(commandName(cmd))
	}
	return app.finish(err)
}

// isCobraUsageError recognises the argument and flag errors cobra returns as
// plain errors, so they get the usage exit code.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires at most", "requires exactly",
		"if any flags in the group", "none of the others can be", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// finish prints the report (json) or the error (text) and picks the exit code.
func (a *App) finish(err error) int {
	code := exitCode(err)
	// A failed service operation (pkg/systemd) carries the unit's journal
	// lines, which say why; they follow the one-line error.
	var journal interface{ JournalLines() []string }
	if !errors.As(err, &journal) {
		journal = nil
	}
	if a.JSON() && a.report.Command != "" {
		if err != nil && !silent(err) {
			a.report.Error = err.Error()
		}
		if journal != nil {
			a.report.Journal = journal.JournalLines()
		}
		writeJSON(a.IO.Out, a.report)
		return code
	}
	if err != nil && !silent(err) {
		fmt.Fprintln(a.IO.ErrOut, "mosqprov: "+oneLine(err.Error()))
	}
	if journal != nil && len(journal.JournalLines()) > 0 {
		fmt.Fprintln(a.IO.ErrOut, "last journal lines (journalctl -u mosquitto -n 20 --no-pager):")
		for _, line := range journal.JournalLines() {
			fmt.Fprintln(a.IO.ErrOut, "  "+line)
		}
	}
	return code
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// NewRootCmd builds the command tree on app.
func NewRootCmd(a *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "mosqprov",
		Short: "Provision and maintain a secured Eclipse Mosquitto broker",
		Long: `mosqprov turns a Debian or Raspberry Pi OS machine into a correctly secured
Eclipse Mosquitto MQTT broker, and keeps it that way. Every command is
idempotent: run it twice and the second run changes nothing and says so.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return a.init(commandName(cmd))
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err.Error()} })
	f := root.PersistentFlags()
	f.StringVar(&a.Globals.Root, "root", "/", "resolve every system path under `DIR` (tests, image builds); services are left alone")
	f.BoolVar(&a.Globals.DryRun, "dry-run", false, "read everything, write and run nothing, print what would change")
	f.StringVarP(&a.Globals.Output, "output", "o", "text", "output format: text or json")
	f.BoolVarP(&a.Globals.Verbose, "verbose", "v", false, "on stderr, say what is written (where, owner, mode), locked and run, and where a password came from")

	for _, build := range []func(*App) *cobra.Command{
		newVersionCmd,
		newUserCmd,
		newCertCmd,
		newConfCmd,
		newACLCmd,
		newInstallCmd,
		newServiceCmd,
		newPlanCmd,
		newApplyCmd,
		newSetupCmd,
		newVerifyCmd,
		newDoctorCmd,
		newManCmd,
	} {
		if c := build(a); c != nil {
			root.AddCommand(c)
		}
	}
	refuseUnknownSubcommands(root)
	return root
}

// commandName is the command as the json report names it ("user add").
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), "mosqprov ")
}

// refuseUnknownSubcommands makes a command group (user, cert, ...) refuse
// an unknown subcommand with a usage error. cobra checks unknown commands
// only on the root: "mosqprov user nope" would print help and exit 0.
func refuseUnknownSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		refuseUnknownSubcommands(c)
		if c.Runnable() || !c.HasSubCommands() {
			continue
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return flagErrorf("%s", msg)
		}
	}
}
