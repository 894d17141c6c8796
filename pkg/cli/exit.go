package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// Exit codes, the same for every command; the README lists them.
const (
	ExitOK = 0
	// ExitError: the command failed, or a check (verify, doctor, cert status,
	// user verify) found a problem.
	ExitError = 1
	// ExitChanges: plan --detailed-exitcode found changes to make.
	ExitChanges = 2
	// ExitUsage: bad flags, arguments or input; nothing was changed.
	ExitUsage = 3
	// ExitNoSystemd: the service can't be driven because systemd isn't PID 1.
	ExitNoSystemd = 4
	// ExitRolledBack: the broker didn't come up after a change; the previous
	// files were restored and the broker restarted on them.
	ExitRolledBack = 5
	// ExitInterrupted: Ctrl-C, or "no" at a confirmation.
	ExitInterrupted = 130
)

// flagError is a usage mistake cobra or a command detected.
type flagError struct{ msg string }

func (e *flagError) Error() string { return e.msg }

func flagErrorf(format string, args ...any) error {
	return &flagError{fmt.Sprintf(format, args...)}
}

// exitCode maps an error to the process's exit code, in one place.
func exitCode(err error) int {
	var fe *flagError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errs.ErrChangesPresent):
		return ExitChanges
	case errors.As(err, &fe), errs.IsInput(err):
		return ExitUsage
	case errors.Is(err, errs.ErrNoSystemd):
		return ExitNoSystemd
	case errors.Is(err, errs.ErrRolledBack):
		return ExitRolledBack
	case errors.Is(err, errs.ErrInterrupted), errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitError
}

// silent errors carry only an exit code: their story was already printed.
func silent(err error) bool {
	return errors.Is(err, errs.ErrChangesPresent) || errors.Is(err, errs.ErrCheckFailed)
}
