package system

import (
	"encoding/json"
	"fmt"
)

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
	Changes  []Change  `json:"changes"`
	Need     Need      `json:"-"`
	Warnings []Warning `json:"warnings,omitempty"`
}

// Warning is one thing the person should know that isn't an error. Most
// are only Text. A file given to the caller because the account it belongs
// to does not exist yet (mosquitto not installed) also names the file and
// the account, so a plan whose package step creates the account can say
// what the install will do instead, without reading the text (pkg/plan).
type Warning struct {
	Text string
	// Path and Account are set on a warning from WarnNoAccount.
	Path, Account string
}

func (w Warning) String() string { return w.Text }

// MarshalJSON writes the text: json reports carry warnings as strings.
func (w Warning) MarshalJSON() ([]byte, error) { return json.Marshal(w.Text) }

// Texts are the warnings' texts.
func Texts(ws []Warning) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Text
	}
	return out
}

// Add appends changes to the report.
func (r *Result) Add(changes ...Change) { r.Changes = append(r.Changes, changes...) }

// Warn appends a warning.
func (r *Result) Warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, Warning{Text: fmt.Sprintf(format, args...)})
}

// WarnNoAccount says that the file at path was given to the caller because
// account does not exist; why is the rest of the sentence.
func (r *Result) WarnNoAccount(path, account, why string) {
	r.Warnings = append(r.Warnings, Warning{Text: path + ": " + why, Path: path, Account: account})
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
