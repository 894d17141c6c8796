// Package errs holds the error kinds that commands map to exit codes.
// Domain packages return these; only pkg/cli turns them into exit codes.
package errs

import (
	"errors"
	"fmt"
	"io/fs"
)

// InputError is bad input from the user: a flag, an argument, a spec field or a
// file the user pointed at. It always names the field and what is wrong with it.
type InputError struct {
	Field   string
	Problem string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// Problem is an input error's problem without its field name (for a
// message that names the field its own way), else the error's text.
func Problem(err error) string {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie.Problem
	}
	return err.Error()
}

// PathCause is what went wrong with a path (fs.PathError's Err: "no such
// file or directory"), for a message that names the path itself; other
// errors are returned as they are.
func PathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Invalid returns an *InputError for field with a formatted problem.
func Invalid(field, format string, args ...any) error {
	return &InputError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// IsInput reports whether err is (or wraps) an *InputError.
func IsInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// ErrNoSystemd means the host is not running systemd as PID 1 (a container,
// a chroot, CI), so the service can't be queried or driven.
var ErrNoSystemd = errors.New("systemd is not running on this host (PID 1 is not systemd)")

// ErrCheckFailed means a check ran and found a problem (a password that does
// not verify, a certificate about to expire, a failing listener). The details
// have already been printed.
var ErrCheckFailed = errors.New("check failed")

// ErrRolledBack means the broker did not come up after a change and the
// previous files were restored.
var ErrRolledBack = errors.New("broker failed to start with the new files; previous files restored")

// ErrInterrupted means the user cancelled (Ctrl-C or "no" at a prompt).
var ErrInterrupted = errors.New("cancelled; nothing was changed")

// ErrChangesPresent is returned by plan --detailed-exitcode when there are changes.
var ErrChangesPresent = errors.New("changes present")
