package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/mosqprov/mosqprov/pkg/plan"
)

// Long steps say what they do while they run. An RSA-2048 key took 1.5 to
// 15 s for the armv6 build under emulation (a Pi Zero is slower still), and
// an apt install takes seconds to minutes: a silent terminal for that long
// looks hung. Only a terminal gets it; -o json and pipes get nothing extra.

// spinnerDelay keeps fast steps (most of them, on a converged broker all of
// them) quiet: the line appears only once a step has taken this long.
const spinnerDelay = 300 * time.Millisecond

var spinnerFrames = []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")

// stepPhrases say what a step is busy with when it is slow.
var stepPhrases = map[string]string{
	plan.StepPackage: "package: apt is installing mosquitto",
	plan.StepCA:      "CA: making its key (RSA takes seconds on a Pi)",
	plan.StepServer:  "server certificate: making its key (RSA takes seconds on a Pi)",
	plan.StepUsers:   "passwords: hashing",
}

// stepProgress is plan.Options.Progress for this run: a spinner line on
// stderr when stderr is a terminal and the output is text, else nil.
func (a *App) stepProgress() func(step string) func() {
	f, ok := a.IO.ErrOut.(*os.File)
	if a.JSON() || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(step string) func() {
		what := stepPhrases[step]
		if what == "" {
			what = step
		}
		return spin(f, what, progressDelay(), 100*time.Millisecond)
	}
}

// busy shows step's spinner line (stepProgress) until the returned
// function is called: the single-step commands that make keys use it.
func (a *App) busy(step string) func() {
	if p := a.stepProgress(); p != nil {
		return p(step)
	}
	return func() {}
}

// spin shows what with a turning frame and the seconds spent, once delay
// has passed, until the returned function is called; that erases the line,
// so the report that follows starts on a clean one.
func spin(w io.Writer, what string, delay, tick time.Duration) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		wait := time.NewTimer(delay)
		defer wait.Stop()
		select {
		case <-stop:
			return
		case <-wait.C:
		}
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "\r\033[K%c %s… %ds", spinnerFrames[i%len(spinnerFrames)], what, int(time.Since(start).Seconds()))
			select {
			case <-stop:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// progressDelay is spinnerDelay unless MOSQPROV_PROGRESS_DELAY holds a Go
// duration: a key made faster than the delay shows nothing, so the
// terminal test sets 0s to see the line whatever the machine's speed.
func progressDelay() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MOSQPROV_PROGRESS_DELAY")); err == nil && d >= 0 {
		return d
	}
	return spinnerDelay
}
