package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/safe"
)

// Main runs mosqprov with args and returns the process exit code.
func Main(args []string) int { return MainWith(args) }

// Command builds one command on the App, as each command group's
// constructor does.
type Command func(*App) *cobra.Command

// MainWith runs like Main on a command tree with extra commands added: the
// man-page generator (internal/cmd/gen-docs) adds its own, so mosqprov
// itself doesn't link the Markdown and roff renderers that every run would
// initialise.
func MainWith(args []string, extra ...Command) int {
	// A run lasts milliseconds and keeps little alive, but Go collects
	// first when the heap reaches 4 MB: `user add` in a 10,000-user
	// password file (two copies of a 1.2 MB file) collected once, for a
	// tenth of its page faults and CPU time (bench/passwd.sh). 200 starts
	// at 8 MB and lets the heap triple what is live; the worst hostile
	// input peaks 2 MB higher (bench/memory.sh). GOGC in the environment
	// still decides.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(200)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, NewApp(SystemIO()), args, extra...)
}

// Run executes one command line on app, on the command tree plus extra,
// and prints the outcome once.
func Run(ctx context.Context, app *App, args []string, extra ...Command) int {
	return run(ctx, app, args, rootFor(app, args, extra))
}

// run executes args on root, the tree Run built.
func run(ctx context.Context, app *App, args []string, root *cobra.Command) int {
	root.SetArgs(args)
	root.SetIn(app.IO.In)
	root.SetOut(app.IO.Out)
	root.SetErr(app.IO.ErrOut)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && cmd != nil && !errors.As(err, new(*flagError)) && isCobraUsageError(err) {
		err = &flagError{withUsage(err.Error(), cmd)}
	}
	if err != nil && cmd != nil && app.report.Command == "" {
		// cobra stops at an unknown command before it parses any flag, so
		// -o json is looked for here: the error still goes out as json.
		if !root.PersistentFlags().Changed("output") {
			app.Globals.Output = outputFromArgs(args, app.Globals.Output)
		}
		app.begin(commandName(cmd))
	}
	return app.finish(err)
}

// outputFromArgs finds -o/--output in args that cobra never parsed; def
// when it isn't there or its value is not a format.
func outputFromArgs(args []string, def string) string {
	fs := pflag.NewFlagSet("output", pflag.ContinueOnError)
	fs.ParseErrorsWhitelist.UnknownFlags = true
	fs.SetOutput(io.Discard)
	out := fs.StringP("output", "o", def, "")
	fs.Parse(args)
	if *out != "text" && *out != "json" {
		return def
	}
	return *out
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

// withUsage adds the command's synopsis to cobra's argument-count errors
// ("accepts 1 arg(s), received 0"), which alone don't say which argument
// is missing.
func withUsage(msg string, cmd *cobra.Command) string {
	for _, p := range []string{"accepts ", "requires at least", "requires at most", "requires exactly"} {
		if strings.HasPrefix(msg, p) {
			return fmt.Sprintf("%s (usage: %s)", msg, strings.TrimSuffix(cmd.UseLine(), " [flags]"))
		}
	}
	return msg
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
		// A failed check (exit 1) is a failure for a script reading the
		// json too: it gets an error; only plan's "changes present" (exit 2)
		// is not one.
		if err != nil && !errors.Is(err, errs.ErrChangesPresent) {
			a.report.Error = err.Error()
		}
		if journal != nil {
			a.report.Journal = journal.JournalLines()
		}
		writeJSON(a.IO.Out, a.report)
		return code
	}
	if err != nil && !silent(err) {
		fmt.Fprintln(a.IO.ErrOut, "mosqprov: "+safe.Escape(oneLine(err.Error())))
	}
	if journal != nil && len(journal.JournalLines()) > 0 {
		fmt.Fprintln(a.IO.ErrOut, "last journal lines (journalctl -u mosquitto -n 20 --no-pager):")
		for _, line := range journal.JournalLines() {
			fmt.Fprintln(a.IO.ErrOut, "  "+safe.Escape(line))
		}
	}
	return code
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// commands are mosqprov's commands, each by the name its constructor gives
// it (TestCommandTable holds the two together).
var commands = []struct {
	name  string
	build Command
}{
	{"version", newVersionCmd},
	{"user", newUserCmd},
	{"cert", newCertCmd},
	{"conf", newConfCmd},
	{"acl", newACLCmd},
	{"bridge", newBridgeCmd},
	{"backup", newBackupCmd},
	{"restore", newRestoreCmd},
	{"install", newInstallCmd},
	{"service", newServiceCmd},
	{"plan", newPlanCmd},
	{"apply", newApplyCmd},
	{"setup", newSetupCmd},
	{"verify", newVerifyCmd},
	{"doctor", newDoctorCmd},
	{"status", newStatusCmd},
}

// NewRootCmd builds the command tree on app, with extra commands added
// (see MainWith).
func NewRootCmd(a *App, extra ...Command) *cobra.Command {
	root := newRoot(a)
	for _, c := range commands {
		root.AddCommand(c.build(a))
	}
	for _, build := range extra {
		root.AddCommand(build(a))
	}
	refuseUnknownSubcommands(a, root)
	return root
}

// rootFor is the tree a command line runs on. Building every command's
// flags is a tenth of the page faults of mosqprov's start (some fifty, each
// tens of microseconds on a small VM or a Pi), so a line that names one of
// mosqprov's commands gets a root with that command alone: nothing it does
// or prints involves the others. Anything else (help, completion, an
// unknown word, flags rootFor doesn't read) gets the whole tree.
func rootFor(a *App, args []string, extra []Command) *cobra.Command {
	name := commandWord(args)
	if len(extra) > 0 || name == "" {
		return NewRootCmd(a, extra...)
	}
	for _, c := range commands {
		if c.name == name {
			root := newRoot(a)
			root.AddCommand(c.build(a))
			// cobra would add its completion command and its four
			// shells' flags; the line doesn't run it.
			root.CompletionOptions.DisableDefaultCmd = true
			refuseUnknownSubcommands(a, root)
			return root
		}
	}
	return NewRootCmd(a, extra...)
}

// commandWord is the first word of args after the global flags, as cobra
// finds it; "" when a flag other than the global ones comes first, or a
// global one in a form this doesn't read (-vo json), so the whole tree
// decides.
func commandWord(args []string) string {
	for i := 0; i < len(args); i++ {
		switch w := args[i]; {
		case w == "--root" || w == "--output" || w == "-o":
			i++ // the value follows
		case w == "--dry-run" || w == "--verbose" || w == "-v",
			strings.HasPrefix(w, "--root="), strings.HasPrefix(w, "--output="),
			strings.HasPrefix(w, "-o"): // -ojson
		case strings.HasPrefix(w, "-"):
			return ""
		default:
			return w
		}
	}
	return ""
}

// newRoot is the root command with the global flags and no commands.
func newRoot(a *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "mosqprov",
		Short: "Provision and maintain a secured Eclipse Mosquitto broker",
		Long: `mosqprov turns a Debian or Raspberry Pi OS machine into a correctly secured
Eclipse Mosquitto MQTT broker, and keeps it that way. Every command is
idempotent: run it twice and the second run changes nothing and says so.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := a.init(commandName(cmd)); err != nil {
				return err
			}
			return checkTargetPaths(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err.Error()} })
	f := root.PersistentFlags()
	f.StringVar(&a.Globals.Root, "root", "/", "resolve every system path under `DIR` (tests, image builds); services are left alone")
	f.BoolVar(&a.Globals.DryRun, "dry-run", false, "read everything, write and run nothing, print what would change")
	f.StringVarP(&a.Globals.Output, "output", "o", "text", "output format: text or json")
	f.BoolVarP(&a.Globals.Verbose, "verbose", "v", false, "on stderr, say what is written (where, owner, mode), locked and run, and where a password came from")
	return root
}

func subcommandNames(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return names
}

// targetPathAnnotation marks a flag naming a path on the target system,
// which is resolved under --root: a relative one would land in the working
// folder instead, outside --root.
const targetPathAnnotation = "mosqprov-target-path"

// markTargetPath marks the flags of fs named names as target paths.
func markTargetPath(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		fs.SetAnnotation(n, targetPathAnnotation, []string{"true"})
	}
}

// checkTargetPaths refuses a target-path flag given a relative or unclean
// path, before the command reads or writes anything.
func checkTargetPaths(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if _, ok := f.Annotations[targetPathAnnotation]; ok && err == nil {
			err = conf.ValidatePath("--"+f.Name, f.Value.String(), false)
		}
	})
	return err
}

// commandName is the command as the json report names it ("user add").
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), "mosqprov ")
}

// refuseUnknownSubcommands makes a command group (user, cert, ...) refuse
// an unknown subcommand with a usage error. cobra checks unknown commands
// only on the root: "mosqprov user nope" would print help and exit 0.
// Without a subcommand a group prints its help, except with -o json, where
// help text on stdout would break the one-object promise.
func refuseUnknownSubcommands(a *App, root *cobra.Command) {
	for _, c := range root.Commands() {
		refuseUnknownSubcommands(a, c)
		if c.Runnable() || !c.HasSubCommands() {
			continue
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && a.JSON() {
				return flagErrorf("%q needs a subcommand: %s", cmd.CommandPath(), strings.Join(subcommandNames(cmd), ", "))
			}
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
