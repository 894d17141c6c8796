// Package systemd queries and drives the mosquitto service through the
// System's Runner (systemctl and journalctl), so tests can record the calls
// and --dry-run can print them.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Unit is the Debian package's service name.
const Unit = "mosquitto"

// UnitDir is where local unit files and drop-ins live (systemd.unit(5)).
const UnitDir = "/etc/systemd/system"

// Booted reports whether the host runs systemd as PID 1, the way
// sd_booted(3) tells: /run/systemd/system exists.
func Booted() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// Service is the mosquitto unit on the host behind sys.
type Service struct {
	Sys  system.System
	Unit string
	// Booted replaces the systemd detection in tests.
	Booted func() bool
	// Listeners lists what must accept TCP connections once the broker is
	// up: New reads them from the broker's configuration (pkg/conf's
	// reader); tests replace it. nil: only the unit's state is waited for.
	Listeners func(ctx context.Context) ([]Listener, error)
	// UpTimeout bounds the wait for the unit to be active and listening
	// after a start, restart or reload.
	UpTimeout time.Duration
	// Poll is the pause between two checks while waiting.
	Poll time.Duration
	// UnitDir holds the unit files and drop-ins mosqprov writes
	// (layout.LimitsDropIn): a rollback that restores one runs
	// daemon-reload.
	UnitDir string
	// BrokerLog returns the broker's own last log lines, shown after the
	// journal on a failure: New reads the LogTail of the log_dest files the
	// broker's configuration names. nil shows none.
	BrokerLog func() []string
	// LogFiles are the broker's log files, where a reload is checked for
	// a configuration the broker could not read again (reloadRefused):
	// New reads them from its configuration. nil: not checked.
	LogFiles func() []string
}

// New returns the mosquitto service behind sys.
func New(sys system.System) *Service {
	s := &Service{Sys: sys, Unit: Unit, Booted: Booted, UnitDir: UnitDir, UpTimeout: 30 * time.Second, Poll: 200 * time.Millisecond}
	s.Listeners = s.configuredListeners
	s.BrokerLog = s.configuredLog
	s.LogFiles = s.configuredLogFiles
	return s
}

// Manageable says whether the service can be driven at all, and why not.
func (s *Service) Manageable() (bool, string) {
	if s.Sys.Root() != "/" {
		return false, "--root is " + s.Sys.Root() + ", so the host's service is left alone"
	}
	if !s.Booted() {
		return false, "systemd is not running on this host"
	}
	return true, ""
}

// IsActive reports whether the unit is active.
func (s *Service) IsActive(ctx context.Context) bool {
	return s.ActiveState(ctx) == "active"
}

// Settle does what need asks of a running broker: at most one reload or
// restart, then a bounded wait until the unit is active and every listener
// accepts connections. If the broker does not come back, every file this
// run changed (s.Sys.Changes) is put back as it was, the broker is
// restarted on the old files, and the error wraps errs.ErrRolledBack and
// carries the journal lines that say why: a broker that was up before is
// up after.
//
// A broker that isn't running is left stopped (it reads the new files when
// it starts); where the service can't be driven Settle says why and does
// nothing, so file commands still work in containers and image builds.
//
// What 2.0.11 re-reads on SIGHUP (checked with the real broker in
// TestReloadPicksUp): the password file, the ACL file and the TLS
// certificate and key files. It does not open or close listeners: a
// reload with a changed listener line logs "It is not currently possible
// to add/remove listeners when reloading the config file" and keeps the old
// sockets. Hence Reload for password/ACL/certificates, Restart for
// listeners and any other configuration.
func (s *Service) Settle(ctx context.Context, need system.Need) (system.Change, error) {
	what := "service " + s.Unit
	if need == system.NeedNothing {
		return system.NewChange(what, "", system.Noop, "nothing it reads changed"), nil
	}
	if ok, why := s.Manageable(); !ok {
		return system.NewChange(what, "", system.Noop, need.String()+" skipped: "+why), nil
	}
	if state := s.ActiveState(ctx); state != "active" {
		return system.NewChange(what, "", system.Noop, "not running ("+state+"); it reads the new files when started"), nil
	}
	action := system.Reload
	if need == system.NeedRestart {
		action = system.Restart
	}
	op := need.String() + " " + s.Unit
	var cmd system.Cmd
	var err error
	var mark logMark
	if need == system.NeedRestart {
		cmd = s.systemctl("restart")
		_, err = s.Sys.Run(ctx, cmd)
	} else {
		mark = s.markLogs()
		cmd, err = s.sendReload(ctx)
	}
	if err != nil {
		return s.rollback(ctx, op, err)
	}
	if s.Sys.IsDryRun() {
		// The command is the dry run's answer to "what would you run".
		return system.NewChange(what, "", action, cmd.String()), nil
	}
	up, err := s.WaitUp(ctx)
	// A broker that ended on the reload (2.1.2 exits on a password or ACL
	// file it can't open, or a mutual-TLS listener's CRL it can't load) is
	// down, and its log says why better than the unit's state.
	if refused := s.reloadRefused(mark); refused != nil {
		return s.rollback(ctx, op, refused)
	}
	if err != nil {
		return s.rollback(ctx, op, err)
	}
	if cmd.Args[0] == "kill" {
		up += "; SIGHUP sent with " + cmd.String() + " because systemctl reload failed"
	}
	return system.NewChange(what, "", action, up), nil
}

// RollbackTimeout bounds a rollback once the command was cancelled: room for
// systemd's default start timeout (90 s) and the wait for the listeners.
const RollbackTimeout = 3 * time.Minute

// rollback restores this run's files after a failed reload or restart and
// restarts the broker on them.
func (s *Service) rollback(ctx context.Context, op string, cause error) (system.Change, error) {
	// Ctrl-C during the restart cancels ctx, and every command run with it
	// would fail at once, leaving the broker down or on files that are no
	// longer there; the rollback runs to the end on its own clock.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RollbackTimeout)
	defer cancel()
	journal := s.failureJournal(ctx)
	changes := s.Sys.Changes()
	if len(changes) == 0 {
		return system.Change{}, &Error{Op: op, Err: cause, Journal: journal}
	}
	if err := system.Restore(s.Sys, changes); err != nil {
		return system.Change{}, &Error{Op: op, Err: fmt.Errorf("%v; restoring the previous files failed too: %v", cause, err), Journal: journal}
	}
	// A unit file put back (the open-file drop-in) is systemd's only after
	// daemon-reload: without it the restart below would run the broker with
	// the limit this run wrote, on the old configuration.
	for _, c := range changes {
		if strings.HasPrefix(c.Path, s.UnitDir+"/") {
			s.Sys.Run(ctx, system.Cmd{Name: "systemctl", Args: []string{"daemon-reload"}})
			break
		}
	}
	// A broker that ran on after a refused reload (a file its user could
	// not read again, or not parse, that is not this run's) is still up.
	// Under a unit that runs it as its own user from the start (mosquitto
	// 2.1's Debian unit: User=mosquitto; 2.0's starts it as root), a
	// restart reads every file as that user and stops at the same file:
	// the broker that was serving would stay down (seen with 2.1.2 under a
	// real systemd, TestApplyInRealSystemd/trixie/mosquitto_2.1). A reload
	// makes it read the restored files as far as it can, and leaves it up.
	if errors.Is(cause, errReloadRefused) {
		if user := s.unitUser(ctx); user != "" && user != "root" && user != "0" {
			if _, err := s.sendReload(ctx); err == nil {
				if _, err := s.WaitUp(ctx); err == nil {
					return system.Change{}, &Error{Op: op, Err: fmt.Errorf("%w (%d file(s)): %v; the broker runs on, reloaded rather than restarted: its unit starts it as %s, so a restart would stop at the same file", errs.ErrRolledBack, countPaths(changes), cause, user), Journal: journal}
				}
			}
		}
	}
	// Restart=on-failure may have hit the start limit while the broker
	// failed on the new files; clear it or the restart below is refused.
	s.Sys.Run(ctx, s.systemctl("reset-failed"))
	if _, err := s.Sys.Run(ctx, s.systemctl("restart")); err != nil {
		return system.Change{}, &Error{Op: op, Err: fmt.Errorf("%v; previous files restored, but the broker does not start on them either: %v", cause, err), Journal: journal}
	}
	if _, err := s.WaitUp(ctx); err != nil {
		return system.Change{}, &Error{Op: op, Err: fmt.Errorf("%v; previous files restored, but the broker does not come up on them either: %v", cause, err), Journal: journal}
	}
	return system.Change{}, &Error{Op: op, Err: fmt.Errorf("%w (%d file(s)): %v", errs.ErrRolledBack, countPaths(changes), cause), Journal: journal}
}

// unitUser is the unit's User= (systemctl show): the account the broker
// runs as from its start; "" when the unit doesn't set one (it starts as
// root, and the broker drops to its configured user itself).
func (s *Service) unitUser(ctx context.Context) string {
	out, err := s.Sys.Run(ctx, system.Cmd{Name: "systemctl", Args: []string{"show", "-p", "User", "--value", s.Unit}, ReadOnly: true})
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out.Stdout))
}

func countPaths(changes []system.FileChange) int {
	seen := map[string]bool{}
	for _, c := range changes {
		seen[c.Path] = true
	}
	return len(seen)
}
