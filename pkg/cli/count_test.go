package cli

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// glyphCount counts the change lines of out (+, ~ and - at the start of a
// line, diff lines being indented) between the line matching from and the
// one matching to.
func glyphCount(t *testing.T, out, from, to string) plan.Summary {
	t.Helper()
	var s plan.Summary
	in := from == ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case !in && from != "" && strings.Contains(line, from):
			in = true
			continue
		case in && strings.Contains(line, to):
			return s
		case !in:
			continue
		}
		switch {
		case strings.HasPrefix(line, "+ "):
			s.Create++
		case strings.HasPrefix(line, "~ "):
			s.Change++
		case strings.HasPrefix(line, "- "):
			s.Remove++
		}
	}
	t.Fatalf("no line with %q after %q:\n%s", to, from, out)
	return s
}

var (
	planCounts  = regexp.MustCompile(`Plan: (\d+) to create, (\d+) to change, (\d+) to remove`)
	applyCounts = regexp.MustCompile(`Apply complete: (\d+) created, (\d+) changed, (\d+) removed`)
)

func counted(t *testing.T, re *regexp.Regexp, out string) string {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, out)
	}
	return m[1] + " " + m[2] + " " + m[3]
}

func words(s plan.Summary) string {
	return strconv.Itoa(s.Create) + " " + strconv.Itoa(s.Change) + " " + strconv.Itoa(s.Remove)
}

// setup's plan and its apply count exactly the lines they print: the plan
// shows broker.yaml's folder and file (written before the apply) and the
// apply counts them, so both say the same numbers.
func TestSetupSummariesCountPrintedLines(t *testing.T) {
	root := t.TempDir()
	p := &setupAnswers{yes: map[string]bool{"Add a user": true, "Write": true}, text: map[string]string{"User name": "alice"}, fullPlan: true}
	out, err := runSetupWith(t, root, p)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// From the full plan on (p at the last question): the short one
	// before it shows steps, not lines.
	i := strings.Index(out, "password hashes shortened")
	if i < 0 {
		t.Fatalf("p didn't show the full plan:\n%s", out)
	}
	out = out[i:]
	shown := glyphCount(t, out, "", "Plan: ")
	if got := counted(t, planCounts, out); got != words(shown) {
		t.Errorf("the plan says %s (create change remove) and shows %s:\n%s", got, words(shown), out)
	}
	done := glyphCount(t, out, "Plan: ", "Apply complete")
	if got := counted(t, applyCounts, out); got != words(done) || done != shown {
		t.Errorf("apply says %s, printed %s, its plan showed %s:\n%s", got, words(done), words(shown), out)
	}
}

// The plan ends with the broker's reload or restart when apply will do one
// (the broker runs, or the package install starts it), as a line counted
// like the others; a stopped broker reads the files when it starts.
func TestPlannedSettle(t *testing.T) {
	for _, tc := range []struct {
		name     string
		active   bool
		need     system.Need
		installs bool
		want     string
	}{
		{"restart of a running broker", true, system.NeedRestart, false, "~ service mosquitto: would restart (it reads the changed files on a restart)"},
		{"reload of a running broker", true, system.NeedReload, false, "~ service mosquitto: would reload (it reads the changed files on a reload)"},
		{"nothing it reads changed", true, system.NeedNothing, false, ""},
		{"stopped broker", false, system.NeedRestart, false, ""},
		{"the install starts it", false, system.NeedRestart, true, "~ service mosquitto: would restart (it reads the changed files on a restart)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &system.Recorder{}
			if tc.active {
				rec.On("systemctl is-active", system.Output{Stdout: []byte("active\n")}, nil)
			} else {
				rec.On("systemctl is-active", system.Output{Stdout: []byte("inactive\n"), ExitCode: 3}, &system.ExitError{Code: 3})
			}
			svc := systemd.New(system.NewDryRun(system.NewReal("/", system.WithRunner(rec))))
			svc.Booted = func() bool { return true }
			res := &plan.Result{Need: tc.need}
			if tc.installs {
				res.Append(plan.StepPackage, system.NewChange("package mosquitto", "", system.Create, ""))
			}
			c, ok := plannedSettle(context.Background(), svc, res)
			got := ""
			if ok {
				got = formatChange(c, true)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
