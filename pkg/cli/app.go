// Package cli wires mosqprov's cobra commands. Commands only parse flags and
// call into the domain packages; every side effect goes through App.Sys.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mosqprov/mosqprov/pkg/safe"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// IOStreams are the process's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// InIsTerminal decides whether mosqprov may prompt.
	InIsTerminal bool
	// ReadHidden reads a line without echo (a password prompt).
	ReadHidden func() (string, error)
}

// SystemIO returns the real standard streams.
func SystemIO() *IOStreams {
	fd := int(os.Stdin.Fd())
	return &IOStreams{
		In:           os.Stdin,
		Out:          os.Stdout,
		ErrOut:       os.Stderr,
		InIsTerminal: term.IsTerminal(fd),
		ReadHidden: func() (string, error) {
			b, err := term.ReadPassword(fd)
			return string(b), err
		},
	}
}

// Globals are the root command's persistent flags.
type Globals struct {
	Root    string
	DryRun  bool
	Output  string
	Verbose bool
}

// App is what every command shares: streams, the System built from the
// global flags, and the report the run prints.
type App struct {
	IO      *IOStreams
	Sys     system.System
	Globals Globals
	// Service is the broker's unit; nil until the System exists.
	Service *systemd.Service
	// NewSystem builds the System from the globals; tests replace it.
	NewSystem func(g Globals) system.System

	report Report
	need   system.Need
	// noReload leaves the one reload or restart for later (--no-reload).
	noReload bool
}

// NewApp returns an App on the given streams with the real host behind it.
func NewApp(io *IOStreams) *App {
	return &App{IO: io, NewSystem: defaultSystem, Globals: Globals{Root: "/", Output: "text"}}
}

func defaultSystem(g Globals) system.System {
	real := system.NewReal(g.Root)
	if g.DryRun {
		return system.NewDryRun(real)
	}
	return real
}

// init builds the System once the global flags are parsed.
func (a *App) init(command string) error {
	if a.Globals.Output != "text" && a.Globals.Output != "json" {
		return flagErrorf("--output: %q is not text or json", a.Globals.Output)
	}
	a.begin(command)
	// An unset variable in a script (--root "$IMAGE") must not silently
	// mean the live host.
	if a.Globals.Root == "" {
		return flagErrorf("--root: the folder is empty; give the folder to resolve system paths under, or leave --root out for /")
	}
	// cobra's completion commands print a shell script, which json can't
	// carry usefully; refusing keeps stdout one object.
	if a.JSON() && (command == "completion" || strings.HasPrefix(command, "completion ")) {
		return flagErrorf("--output: %s prints a shell script; run it without -o json", command)
	}
	if a.Sys == nil {
		a.Sys = a.NewSystem(a.Globals)
	}
	// --verbose: the System describes every write, folder, lock and command.
	if a.Globals.Verbose {
		a.Sys.SetLog(a.Debugf)
	}
	if a.Service == nil {
		a.Service = systemd.New(a.Sys)
	}
	return nil
}

// begin starts the run's report. init calls it; Run calls it too when
// cobra refused the arguments before init ran, so -o json still prints one
// object with the error.
func (a *App) begin(command string) {
	a.report.Command = command
	a.report.DryRun = a.Globals.DryRun
	a.report.Changes = []system.Change{}
}

// JSON reports whether output is json.
func (a *App) JSON() bool { return a.Globals.Output == "json" }

// Add reports changes; in text mode each is printed as it happens.
func (a *App) Add(changes ...system.Change) {
	for _, c := range changes {
		a.report.Changes = append(a.report.Changes, c)
		if c.Changed {
			a.report.Changed = true
		}
		if !a.JSON() {
			fmt.Fprintln(a.IO.Out, safe.Escape(formatChange(c, a.Globals.DryRun)))
		}
	}
}

// Warn reports something the user should know that isn't an error.
func (a *App) Warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.report.Warnings = append(a.report.Warnings, msg)
	if !a.JSON() {
		fmt.Fprintln(a.IO.ErrOut, "warning: "+safe.Escape(msg))
	}
}

// Infof prints progress for people; json output leaves it out.
func (a *App) Infof(format string, args ...any) {
	if !a.JSON() {
		fmt.Fprintln(a.IO.ErrOut, safe.EscapeText(fmt.Sprintf(format, args...)))
	}
}

// Debugf prints only with --verbose, on stderr, so it goes with json output
// too (stdout keeps the one json object).
func (a *App) Debugf(format string, args ...any) {
	if a.Globals.Verbose {
		fmt.Fprintln(a.IO.ErrOut, safe.EscapeText(fmt.Sprintf(format, args...)))
	}
}

// Result hands a command's data to the report: json output embeds result;
// text output calls text instead.
func (a *App) Result(result any, text func(w io.Writer)) {
	if a.JSON() {
		a.report.Result = result
		return
	}
	if text != nil {
		// Names from files (users, topics, certificate subjects) are
		// printed escaped, so none can drive the terminal.
		w := safe.NewWriter(a.IO.Out)
		text(w)
		w.Flush()
	}
}

// Need records what the broker must do once the command's writes are done.
func (a *App) Need(n system.Need) { a.need = a.need.Max(n) }

// Take reports one converge step's result (system.Result, the shape every
// domain step returns): its warnings are said, its changes printed and its
// need kept for the one Settle at the end of the command.
func (a *App) Take(res system.Result) {
	for _, w := range res.Warnings {
		a.Warn("%s", w)
	}
	a.Add(res.Changes...)
	a.Need(res.Need)
}

// Converged is the tail of a command made of one converge step: the step's
// error, else its result taken and the broker settled.
func (a *App) Converged(ctx context.Context, res system.Result, err error) error {
	if err != nil {
		return err
	}
	a.Take(res)
	return a.Settle(ctx)
}

// holdReload drops the reload the command's changes need (--no-reload),
// saying so: the broker takes them on its next reload or restart.
func (a *App) holdReload() {
	if a.need != system.NeedNothing {
		a.Infof("not reloading the broker (--no-reload): it reads the change on its next reload or restart")
		a.need = system.NeedNothing
	}
}

// Settle performs the one reload or restart the command's changes need,
// or, with --no-reload, says it is left for later.
func (a *App) Settle(ctx context.Context) error {
	if a.noReload {
		a.holdReload()
		return nil
	}
	if a.need == system.NeedNothing {
		return nil
	}
	change, err := a.Service.Settle(ctx, a.need)
	if err != nil {
		return err
	}
	a.need = system.NeedNothing
	a.Add(change)
	return nil
}
