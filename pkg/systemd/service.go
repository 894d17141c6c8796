package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// JournalLines is how many of the unit's last journal lines a failure shows.
const JournalLines = 20

// Error is a failed service operation with the unit's last journal lines,
// which is where systemd and the broker say why. Its message stays one line;
// the CLI prints the journal after it.
type Error struct {
	Op      string // "restart mosquitto"
	Err     error
	Journal []string
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// JournalLines returns the journal lines that explain the failure.
func (e *Error) JournalLines() []string { return e.Journal }

func (s *Service) systemctl(verb string) system.Cmd {
	return system.Cmd{Name: "systemctl", Args: []string{verb, s.Unit}}
}

func (s *Service) query(verb string) system.Cmd {
	c := s.systemctl(verb)
	c.ReadOnly = true
	return c
}

// ActiveState is what `systemctl is-active` prints: active, inactive,
// failed, activating, reloading, deactivating ("unknown" if it says nothing).
func (s *Service) ActiveState(ctx context.Context) string {
	// is-active exits non-zero for every state but active; the state is on stdout.
	out, _ := s.Sys.Run(ctx, s.query("is-active"))
	if st := strings.TrimSpace(string(out.Stdout)); st != "" {
		return st
	}
	return "unknown"
}

// EnabledState is what `systemctl is-enabled` prints: enabled, disabled,
// masked, static, or not-found when the unit file doesn't exist.
func (s *Service) EnabledState(ctx context.Context) string {
	out, err := s.Sys.Run(ctx, s.query("is-enabled"))
	if st := strings.TrimSpace(string(out.Stdout)); st != "" {
		return st
	}
	var ee *system.ExitError
	if errors.As(err, &ee) && strings.Contains(ee.Stderr, "No such file") {
		return "not-found"
	}
	return "unknown"
}

// Journal is the unit's last JournalLines lines (none if journalctl
// fails), followed by the broker's own log when it logs to a file.
func (s *Service) Journal(ctx context.Context) []string {
	var lines []string
	out, err := s.Sys.Run(ctx, system.Cmd{Name: "journalctl", Args: []string{"-u", s.Unit, "-n", strconv.Itoa(JournalLines), "--no-pager"}, ReadOnly: true})
	if text := strings.TrimRight(string(out.Stdout), "\n"); err == nil && text != "" {
		lines = strings.Split(text, "\n")
	}
	if s.BrokerLog != nil {
		lines = append(lines, s.BrokerLog()...)
	}
	return lines
}

// Require returns why the service commands can't drive the unit: --root
// points elsewhere (an input error), or systemd isn't PID 1 (ErrNoSystemd).
func (s *Service) Require() error {
	if s.Sys.Root() != "/" {
		return errs.Invalid("--root", "service commands drive this host's systemd; they can't be used with --root %s", s.Sys.Root())
	}
	if !s.Booted() {
		return fmt.Errorf("service %s: %w; start the broker by hand with `mosquitto -c /etc/mosquitto/mosquitto.conf`", s.Unit, errs.ErrNoSystemd)
	}
	return nil
}

// WaitUp waits, at most UpTimeout, until the unit is active and every
// listener accepts TCP connections (dialAll), and says what it saw.
func (s *Service) WaitUp(ctx context.Context) (string, error) {
	deadline := s.Sys.Now().Add(s.UpTimeout)
	for {
		state := s.ActiveState(ctx)
		var problem error
		switch state {
		case "active":
			ls, err := s.listeners(ctx)
			if err != nil {
				return "", err
			}
			if problem = dialAll(ctx, ls); problem == nil {
				return describe(ls), nil
			}
		case "failed", "inactive":
			// Nothing will bring it up by waiting (Restart=on-failure is
			// already exhausted or doesn't apply).
			return "", fmt.Errorf("%s is %s", s.Unit, state)
		default:
			problem = fmt.Errorf("%s is %s", s.Unit, state)
		}
		if !s.Sys.Now().Before(deadline) {
			return "", fmt.Errorf("%v after %s", problem, s.UpTimeout)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(s.Poll):
		}
	}
}

// dialAll checks that every listener takes connections. Where the
// kernel's socket tables can tell (readListening), it looks there instead
// of connecting: a bare TCP connection to a TLS listener, closed without a
// handshake, makes the broker log an OpenSSL error ("unexpected eof while
// reading") after every restart and reload, in a log people and doctor
// read. A listener bound to a name, or a host without the tables, is
// dialled.
func dialAll(ctx context.Context, ls []Listener) error {
	socks, tables := readListening()
	d := net.Dialer{Timeout: time.Second}
	for _, l := range ls {
		if tables {
			if up, sure := l.listeningIn(socks); sure {
				if !up {
					return fmt.Errorf("listener %s does not accept connections", l.Addr())
				}
				continue
			}
		}
		c, err := d.DialContext(ctx, "tcp", l.Addr())
		if err != nil {
			return fmt.Errorf("listener %s does not accept connections", l.Addr())
		}
		c.Close()
	}
	return nil
}

func describe(ls []Listener) string {
	if len(ls) == 0 {
		return "active"
	}
	var addrs []string
	every := false
	for _, l := range ls {
		addrs = append(addrs, l.Bound())
		every = every || l.Bind == ""
	}
	line := "active, accepting on " + strings.Join(addrs, " ")
	if every {
		line += " (* is every interface)"
	}
	return line
}

// Status is the unit's state as `systemctl show` reports it, with the
// listeners checked and the last journal lines.
type Status struct {
	Unit        string           `json:"unit"`
	LoadState   string           `json:"load_state"`
	ActiveState string           `json:"active_state"`
	SubState    string           `json:"sub_state"`
	Enabled     string           `json:"enabled"`
	MainPID     int              `json:"main_pid"`
	Since       string           `json:"since,omitempty"`
	Listeners   []ListenerStatus `json:"listeners"`
	Journal     []string         `json:"journal"`
}

// ListenerStatus is one configured listener and whether it accepted a connection.
type ListenerStatus struct {
	Addr      string `json:"addr"`
	Accepting bool   `json:"accepting"`
}

// Status reads the unit's state; it changes nothing.
func (s *Service) Status(ctx context.Context) (Status, error) {
	if err := s.Require(); err != nil {
		return Status{}, err
	}
	out, err := s.Sys.Run(ctx, system.Cmd{Name: "systemctl", ReadOnly: true,
		Args: []string{"show", s.Unit, "--property=LoadState,ActiveState,SubState,UnitFileState,MainPID,ActiveEnterTimestamp"}})
	if err != nil {
		return Status{}, fmt.Errorf("status %s: %w", s.Unit, err)
	}
	st := Status{Unit: s.Unit, Listeners: []ListenerStatus{}}
	for _, line := range strings.Split(string(out.Stdout), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "LoadState":
			st.LoadState = v
		case "ActiveState":
			st.ActiveState = v
		case "SubState":
			st.SubState = v
		case "UnitFileState":
			st.Enabled = v
		case "MainPID":
			st.MainPID, _ = strconv.Atoi(v)
		case "ActiveEnterTimestamp":
			st.Since = v
		}
	}
	if st.LoadState == "not-found" {
		return st, fmt.Errorf("status %s: %w", s.Unit, errNotInstalled)
	}
	if st.ActiveState == "active" {
		if ls, err := s.listeners(ctx); err == nil {
			for _, l := range ls {
				st.Listeners = append(st.Listeners, ListenerStatus{Addr: l.Addr(), Accepting: dialAll(ctx, []Listener{l}) == nil})
			}
		}
	}
	st.Journal = s.Journal(ctx)
	return st, nil
}

var errNotInstalled = errors.New("the unit does not exist; is mosquitto installed? (mosqprov install)")

func (s *Service) change(action system.Action, detail string) system.Change {
	return system.NewChange("service "+s.Unit, "", action, detail)
}

// fail wraps err with the unit's journal.
func (s *Service) fail(ctx context.Context, op string, err error) error {
	return &Error{Op: op + " " + s.Unit, Err: err, Journal: s.failureJournal(ctx)}
}

// failureJournal is Journal right after a failure. journald takes systemd's
// and the broker's lines asynchronously, and a journalctl run the instant
// systemctl returns once showed none of the failed start's lines, the very
// ones that say why (the e2e container, a bad option in conf.d); --sync
// waits until journald has stored everything sent to it before. It needs
// root, as changing the service does; if it fails the read goes on anyway.
func (s *Service) failureJournal(ctx context.Context) []string {
	s.Sys.Run(ctx, system.Cmd{Name: "journalctl", Args: []string{"--sync"}, ReadOnly: true})
	return s.Journal(ctx)
}

// sendReload runs `systemctl reload`. Debian's unit reloads with
// ExecReload=/bin/kill -HUP $MAINPID, and /bin/kill comes from procps, which
// minimal images (debootstrap minbase, slim containers) lack: the reload
// then fails with "Failed at step EXEC spawning /bin/kill" while the broker
// runs on untouched. The same SIGHUP is then sent through systemd itself.
func (s *Service) sendReload(ctx context.Context) (system.Cmd, error) {
	cmd := s.systemctl("reload")
	_, err := s.Sys.Run(ctx, cmd)
	if err == nil || s.ActiveState(ctx) != "active" {
		return cmd, err
	}
	// --kill-who is spelled so for systemd < 252 (bullseye); newer ones
	// still accept it next to --kill-whom.
	kill := system.Cmd{Name: "systemctl", Args: []string{"kill", "--kill-who=main", "--signal=SIGHUP", s.Unit}}
	if _, kerr := s.Sys.Run(ctx, kill); kerr != nil {
		return cmd, err
	}
	return kill, nil
}

// run runs a mutating systemctl verb and reports it.
func (s *Service) run(ctx context.Context, verb string, wait bool) (system.Change, error) {
	cmd := s.systemctl(verb)
	var err error
	var mark logMark
	if verb == "reload" {
		mark = s.markLogs()
		cmd, err = s.sendReload(ctx)
	} else {
		_, err = s.Sys.Run(ctx, cmd)
	}
	if err != nil {
		return system.Change{}, s.fail(ctx, verb, err)
	}
	detail := cmd.String()
	if wait && !s.Sys.IsDryRun() {
		up, err := s.WaitUp(ctx)
		if refused := s.reloadRefused(mark); refused != nil {
			return system.Change{}, s.fail(ctx, verb, refused)
		}
		if err != nil {
			return system.Change{}, s.fail(ctx, verb, err)
		}
		detail += "; " + up
	}
	return s.change(system.Run, detail), nil
}

// Enable makes the unit start at boot; nothing is run when it already does.
func (s *Service) Enable(ctx context.Context) (system.Change, error) {
	if err := s.Require(); err != nil {
		return system.Change{}, err
	}
	switch st := s.EnabledState(ctx); st {
	case "enabled":
		return s.change(system.Noop, "already enabled"), nil
	case "masked":
		return system.Change{}, s.fail(ctx, "enable", errors.New("the unit is masked; run `systemctl unmask "+s.Unit+"` if it should run"))
	case "not-found":
		return system.Change{}, s.fail(ctx, "enable", errNotInstalled)
	}
	return s.run(ctx, "enable", false)
}

// Start starts the unit and waits until it listens; nothing is run when it
// is already active.
func (s *Service) Start(ctx context.Context) (system.Change, error) {
	if err := s.Require(); err != nil {
		return system.Change{}, err
	}
	if st := s.ActiveState(ctx); st == "active" {
		return s.change(system.Noop, "already active"), nil
	}
	return s.run(ctx, "start", true)
}

// Stop stops the unit; nothing is run when it isn't running.
func (s *Service) Stop(ctx context.Context) (system.Change, error) {
	if err := s.Require(); err != nil {
		return system.Change{}, err
	}
	switch st := s.ActiveState(ctx); st {
	case "inactive", "failed", "unknown":
		return s.change(system.Noop, "not running ("+st+")"), nil
	}
	return s.run(ctx, "stop", false)
}

// Restart restarts the unit (starting it if it was stopped, as systemctl
// does) and waits until it listens. It is asked for explicitly, so it always
// runs.
func (s *Service) Restart(ctx context.Context) (system.Change, error) {
	if err := s.Require(); err != nil {
		return system.Change{}, err
	}
	return s.run(ctx, "restart", true)
}

// Reload sends the broker SIGHUP (the unit's ExecReload) so it re-reads the
// password file, ACL file and certificates; nothing is run when it isn't
// running, since a stopped broker reads them when it starts.
func (s *Service) Reload(ctx context.Context) (system.Change, error) {
	if err := s.Require(); err != nil {
		return system.Change{}, err
	}
	if st := s.ActiveState(ctx); st != "active" {
		return s.change(system.Noop, "not running ("+st+"); it reads its files when started"), nil
	}
	return s.run(ctx, "reload", true)
}
