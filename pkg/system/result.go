package system

import "fmt"

// Need is what a step's changes require of the running broker. It is
// vocabulary, like Action: the domain packages say it, pkg/systemd acts on it.
type Need int

const (
	// NeedNothing: nothing the broker reads changed.
	NeedNothing Need = iota
	// NeedReload: the password file, ACL file or certificates changed; the
	// broker re-reads them on SIGHUP (REFERENCE.md), no client is dropped.
	NeedReload
	// NeedRestart: listeners or other configuration changed.
	NeedRestart
)

func (n Need) String() string {
	switch n {
	case NeedReload:
		return "reload"
	case NeedRestart:
		return "restart"
	}
	return "none"
}

// Max is the stronger of two needs: a restart also reloads.
func (n Need) Max(o Need) Need {
	if o > n {
		return o
	}
	return n
}

// Result is what every converge step reports, whatever it converges (a
// file, a certificate, a package, the unit): the lines of the report, what
// the running broker needs afterwards and what the person should know. One
// shape, as every chezmoi target-state entry has one Apply signature, so the
// command side has one way to collect them (pkg/cli App.Converged, pkg/plan).
type Result struct {
	Changes  []Change `json:"changes"`
	Need     Need     `json:"-"`
	Warnings []string `json:"warnings,omitempty"`
}

// Add appends changes to the report.
func (r *Result) Add(changes ...Change) { r.Changes = append(r.Changes, changes...) }

// Warn appends a warning.
func (r *Result) Warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// Needs raises what the broker needs to at least n.
func (r *Result) Needs(n Need) { r.Need = r.Need.Max(n) }

// Merge adds another step's result to r.
func (r *Result) Merge(o Result) {
	r.Add(o.Changes...)
	r.Needs(o.Need)
	r.Warnings = append(r.Warnings, o.Warnings...)
}

// Changed reports whether any change changed something.
func (r Result) Changed() bool {
	for _, c := range r.Changes {
		if c.Changed {
			return true
		}
	}
	return false
}
