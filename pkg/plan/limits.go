package plan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/status"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// StepLimits is the unit's open-file limit (listeners[].max_connections).
const StepLimits = "open-file limit"

// limitsStep gives the unit a LimitNOFILE drop-in when the listeners'
// max_connections add up to more open files than systemd's default allows,
// and removes mosqprov's drop-in when they no longer do. Nothing is shown
// when there is no drop-in and none is needed.
func limitsStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	var conns []int
	for _, l := range s.Listeners {
		if l.MaxConnections != nil {
			conns = append(conns, *l.MaxConnections)
		}
	}
	booted := systemd.Booted
	if o.Service != nil {
		booted = o.Service.Booted
	}
	res, err := systemd.EnsureLimits(ctx, sys, systemd.NOFILEFor(conns), booted())
	if err != nil {
		return err
	}
	if len(res.Changes) == 0 && len(res.Warnings) == 0 {
		return nil
	}
	r.add(StepLimits, res)
	return nil
}

// StepStatus is the identity `mosqprov status` reads $SYS as.
const StepStatus = "status identity"

// statusStep makes the status identity's password (once, root-only) and
// adds the identity to the users the next step writes; its ACL rules were
// added with the spec's (desire). Without status_reader it takes away what
// it added: the identity's line in the password file (its name is
// reserved: broker.yaml can't list it) and its password file; the ACL file
// is wholly the spec's, so its rules are gone with the ACL step.
func statusStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	if !s.StatusReader {
		data, err := sys.ReadFile(layout.PasswordFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read %s: %w", layout.PasswordFile, err)
		}
		if f, err := passwd.Parse(data); err == nil {
			if _, ok := f.Lookup(status.User); ok {
				d.removeUsers = append(d.removeUsers, status.User)
			}
		}
		res, err := status.RemoveSecret(sys)
		if err != nil {
			return err
		}
		if len(res.Changes) > 0 {
			r.add(StepStatus, res)
		}
		return nil
	}
	var random func([]byte) error
	if o.Rand != nil {
		random = func(b []byte) error { _, err := io.ReadFull(o.Rand, b); return err }
	}
	pw, res, err := status.EnsureSecret(sys, random)
	if err != nil {
		return err
	}
	d.users = append(d.users, passwd.Desired{Name: status.User, Password: pw})
	r.add(StepStatus, res)
	return nil
}
