// Package systemd queries and drives the mosquitto service through the
// System's Runner (systemctl and journalctl), so tests can record the calls
// and --dry-run can print them.
package systemd

import (
	"context"
	"fmt"
	"os"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// Unit is the Debian package's service name.
const Unit = "mosquitto"

// Need is what a command's changes require of the running broker.
type Need int

const (
	// None: nothing the broker reads changed.
	None Need = iota
	// Reload: the password file, ACL file or certificates changed; the
	// broker re-reads them on SIGHUP (REFERENCE.md), no client is dropped.
	Reload
	// Restart: listeners or other configuration changed.
	Restart
)

func (n Need) String() string {
	switch n {
	case Reload:
		return "reload"
	case Restart:
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
}

// New returns the mosquitto service behind sys.
func New(sys system.System) *Service {
	return &Service{Sys: sys, Unit: Unit, Booted: Booted}
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

// IsActive runs systemctl is-active.
func (s *Service) IsActive(ctx context.Context) bool {
	_, err := s.Sys.Run(ctx, system.Cmd{Name: "systemctl", Args: []string{"is-active", "--quiet", s.Unit}, ReadOnly: true})
	return err == nil
}

// Settle does what need asks of a running broker: at most one reload or
// restart. A broker that isn't running is left stopped (it will read the new
// files when it starts); where the service can't be driven it says why.
func (s *Service) Settle(ctx context.Context, need Need) (system.Change, error) {
	what := "service " + s.Unit
	if need == None {
		return system.NewChange(what, "", system.Noop, "nothing it reads changed"), nil
	}
	if ok, why := s.Manageable(); !ok {
		return system.NewChange(what, "", system.Noop, need.String()+" skipped: "+why), nil
	}
	if !s.IsActive(ctx) {
		return system.NewChange(what, "", system.Noop, "not running; it reads the new files when started"), nil
	}
	action := system.Reload
	if need == Restart {
		action = system.Restart
	}
	if _, err := s.Sys.Run(ctx, system.Cmd{Name: "systemctl", Args: []string{need.String(), s.Unit}}); err != nil {
		return system.Change{}, fmt.Errorf("%s %s: %w", need, s.Unit, err)
	}
	return system.NewChange(what, "", action, ""), nil
}
