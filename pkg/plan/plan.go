// Package plan turns a broker.yaml spec into the broker: package, CA,
// server certificate, password file, ACL file, configuration and service,
// in that order, each through the domain package's own converge function
// (the one its single-step command calls). Plan and apply are the same
// code: plan runs it on a system.DryRun (reads for real, records writes),
// apply on the real System.
package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// Options are what the engine needs from outside the spec.
type Options struct {
	// LookupEnv reads password_env variables (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// ReadFile reads password_file files, which live on the machine running
	// mosqprov, not under --root (default system.ReadInputFile, capped at
	// system.MaxPEM).
	ReadFile func(string) ([]byte, error)
	// Rand is the randomness for keys and salts (default crypto/rand).
	Rand io.Reader
	// Service is the mosquitto unit on the same System (default systemd.New(sys)).
	Service *systemd.Service
	// Installer installs the package on the same System (default apt.NewInstaller(sys)).
	Installer *apt.Installer
	// Progress, when set, is told each step as it starts and calls the
	// function it returns when the step ends: a terminal shows what a long
	// step (an RSA key on a Pi, an apt install) is doing.
	Progress func(step string) (done func())
}

// Step names, in the order they run.
const (
	StepPackage = "package"
	StepCA      = "CA"
	StepServer  = "server certificate"
	StepUsers   = "passwords"
	StepACL     = "ACL"
	StepConf    = "configuration"
	StepBridges = "bridges"
	StepState   = "state"
	StepService = "service"
)

// Step is what one part of the broker needed.
type Step struct {
	Name    string          `json:"step"`
	Changes []system.Change `json:"changes"`
	Need    system.Need     `json:"-"`
}

// Result is a plan (on a DryRun System) or what an apply did.
type Result struct {
	Changed bool   `json:"changed"`
	Steps   []Step `json:"steps"`
	// Unmanaged are users of the password file the spec doesn't list, left
	// alone (prune_users: false).
	Unmanaged []string `json:"unmanaged_users,omitempty"`
	// Need is the one reload or restart the changes call for.
	Need     system.Need `json:"-"`
	NeedName string      `json:"service_action"`
	Warnings []string    `json:"warnings,omitempty"`
	Summary  Summary     `json:"summary"`
	// BrokerVersion is the installed broker's version ("2.0.11"), when the
	// package step looked.
	BrokerVersion string `json:"broker_version,omitempty"`
	// installs is set by a plan's package step that would install the
	// package, which creates the broker's account.
	installs bool
}

// Summary counts the changes by kind.
type Summary struct {
	Create int `json:"create"`
	Change int `json:"change"`
	Remove int `json:"remove"`
}

func (s Summary) String() string {
	return fmt.Sprintf("%d to create, %d to change, %d to remove", s.Create, s.Change, s.Remove)
}

// Count is the summary of changes as they are printed: each change that
// changes something is one line, counted by its glyph (+ create, - remove,
// ~ every other action: update, run, reload, restart). Plan, apply and
// setup all count with it, so a summary line counts exactly the lines shown.
func Count(changes []system.Change) Summary {
	var s Summary
	for _, c := range changes {
		if !c.Changed {
			continue
		}
		switch c.Action.Glyph() {
		case "+":
			s.Create++
		case "-":
			s.Remove++
		default:
			s.Change++
		}
	}
	return s
}

// Append adds a step after the engine's (setup's broker.yaml, the broker's
// reload or restart) and counts its changes in the summary.
func (r *Result) Append(name string, changes ...system.Change) {
	r.add(name, system.Result{Changes: changes})
}

// Prepend adds a step before the engine's and counts its changes.
func (r *Result) Prepend(name string, changes ...system.Change) {
	r.add(name, system.Result{Changes: changes})
	last := r.Steps[len(r.Steps)-1]
	r.Steps = append([]Step{last}, r.Steps[:len(r.Steps)-1]...)
}

// Changes is every change of every step, in order.
func (r *Result) Changes() []system.Change {
	var all []system.Change
	for _, s := range r.Steps {
		all = append(all, s.Changes...)
	}
	return all
}

// add records what one step did: every step reports the one converge
// shape, system.Result.
func (r *Result) add(name string, res system.Result) {
	changes := res.Changes
	if changes == nil {
		changes = []system.Change{}
	}
	r.Steps = append(r.Steps, Step{Name: name, Changes: changes, Need: res.Need})
	r.Need = r.Need.Max(res.Need)
	for _, w := range res.Warnings {
		r.Warnings = append(r.Warnings, r.warning(w))
	}
	n := Count(changes)
	r.Summary.Create += n.Create
	r.Summary.Change += n.Change
	r.Summary.Remove += n.Remove
	if n != (Summary{}) {
		r.Changed = true
	}
}

// Converge makes the broker on sys match s. Every input (passwords from
// the environment or files, the configuration it renders) is checked before
// the first write; then each step runs in order. On a DryRun System nothing
// is written and the result is the plan. It does not reload or restart the
// broker: the caller settles r.Need once, at the very end.
func Converge(ctx context.Context, sys system.System, s *spec.Spec, o Options) (*Result, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = func(path string) ([]byte, error) {
			return system.ReadInputFile("file", path, system.MaxPEM)
		}
	}
	d, err := desire(s, o)
	if err != nil {
		return nil, err
	}
	if d.bridges, err = desireBridges(sys, s, o); err != nil {
		return nil, err
	}
	r := &Result{Steps: []Step{}}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		done := func() {}
		if o.Progress != nil {
			done = o.Progress(step.name)
		}
		err := step.run(ctx, sys, s, d, o, r)
		done()
		if err != nil {
			return r, fmt.Errorf("%s: %w", step.name, err)
		}
	}
	if d.installing && sys.IsDryRun() {
		r.packageFolders()
	}
	r.NeedName = r.Need.String()
	return r, nil
}

// warning is the text of a step's warning. A plan that installs the
// package words a file it can't yet give to the broker's account as what
// will happen: apply installs the package first, which creates the account,
// and then writes the file as the account's.
func (r *Result) warning(w system.Warning) string {
	if r.installs && w.Account == layout.BrokerUser {
		return w.Path + ": will be owned by " + layout.BrokerUser + ": the " + apt.Broker + " package this plan installs first creates the user"
	}
	return w.Text
}

// packageDirs are the folders Debian's mosquitto package ships (each with a
// README, checked in 2.0.11-1.2+deb12u1 and 2.0.21 of trixie).
var packageDirs = map[string]bool{
	layout.MosquittoDir:                      true,
	layout.ConfDir:                           true,
	layout.BrokerCertDir:                     true,
	layout.MosquittoDir + "/ca_certificates": true,
}

// packageFolders turns a plan's creation of a folder the package's install
// makes into a no-op: apply installs first, finds the folder there and
// doesn't create it, so a plan that counted it would say one more than the
// apply does.
func (r *Result) packageFolders() {
	for i := range r.Steps {
		if r.Steps[i].Name == StepPackage {
			continue
		}
		for j, c := range r.Steps[i].Changes {
			if c.Action == system.Create && packageDirs[c.Path] {
				r.Steps[i].Changes[j] = system.NewChange(c.What, c.Path, system.Noop, "made by the package's install")
			}
		}
	}
	r.Summary = Count(r.Changes())
	r.Changed = r.Summary != (Summary{})
}

type step struct {
	name string
	run  func(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error
}

// steps is the order the article does things in, which is also the order
// that keeps every intermediate state working: keys and certificates exist
// before the configuration names them, the password and ACL files before
// the configuration points at them, the record of what was written right
// after the last file, and the service is touched last.
var steps = []step{
	{StepPackage, packageStep},
	{StepCA, caStep},
	{StepServer, serverStep},
	{StepCRL, crlStep},
	{StepStatus, statusStep},
	{StepUsers, usersStep},
	{StepListenerUsers, listenerUsersStep},
	{StepACL, aclStep},
	{StepConf, confStep},
	{StepListenerUsersGone, listenerUsersGoneStep},
	{StepLimits, limitsStep},
	{StepBridges, bridgesStep},
	{StepState, stateStep},
	{StepService, serviceStep},
}

// secretFromFile is the first line of a password_file.
func secretFromFile(o Options, s *spec.Spec, field, path string) (string, error) {
	if !filepath.IsAbs(path) && s.File() != "" {
		path = filepath.Join(filepath.Dir(s.File()), path)
	}
	data, err := o.ReadFile(path)
	var ie *errs.InputError
	if errors.As(err, &ie) {
		return "", s.At(field, errs.Invalid(field, "%s", ie.Problem))
	}
	if err != nil {
		return "", s.At(field, errs.Invalid(field, "can't read %s: %v", path, errs.PathCause(err)))
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	pw := strings.TrimSuffix(string(line), "\r")
	if pw == "" {
		return "", s.At(field, errs.Invalid(field, "%s: the first line is empty", path))
	}
	return pw, nil
}
