package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// fakeUnit stands in for systemctl and journalctl (the only commands tests
// may replace) and behaves like the real unit: start/restart read the
// broker's config file, fail on one that says "broken", and otherwise open a
// real TCP listener, so Settle's checks dial a real socket. "nolisten" in the
// file is a broker that starts but can't open its port (taken by someone else).
type fakeUnit struct {
	mu      sync.Mutex
	calls   []string
	state   string
	enabled string
	conf    string
	port    int
	ln      net.Listener
	noKill  bool // the unit's ExecReload can't run (/bin/kill missing)
	// dropIn is a drop-in of the unit: systemd reads it on daemon-reload
	// (loaded) and a start runs the broker with what was loaded then
	// (startedWith), as the real one does with LimitNOFILE.
	dropIn, loaded, startedWith string
	// user is the unit's User= ("": none, the broker starts as root).
	// unreadable is a conf.d file only root can read: a reload appends the
	// broker's refusal to log and the broker runs on; a start fails when
	// the unit runs the broker as user, who can't read it either.
	user       string
	unreadable bool
	log        string
}

func newFakeUnit(t *testing.T, state string) *fakeUnit {
	t.Helper()
	f := &fakeUnit{state: state, enabled: "disabled", conf: filepath.Join(t.TempDir(), "mosquitto.conf"), port: freePort(t)}
	if err := os.WriteFile(f.conf, []byte("good"), 0o644); err != nil {
		t.Fatal(err)
	}
	if state == "active" {
		f.listen()
	}
	t.Cleanup(func() {
		if f.ln != nil {
			f.ln.Close()
		}
	})
	return f
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// listen opens the broker's port; if something else took it meanwhile the
// unit is up but not accepting, which the checks must notice anyway.
func (f *fakeUnit) listen() {
	if f.ln != nil {
		return
	}
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", f.port)); err == nil {
		f.ln = ln
	}
}

func (f *fakeUnit) close() {
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
}

func (f *fakeUnit) Run(_ context.Context, cmd system.Cmd) (system.Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := cmd.String()
	f.calls = append(f.calls, line)
	fail := func(code int, stdout, stderr string) (system.Output, error) {
		return system.Output{Stdout: []byte(stdout), Stderr: []byte(stderr), ExitCode: code}, &system.ExitError{Cmd: line, Code: code, Stderr: stderr}
	}
	if cmd.Name == "journalctl" {
		return system.Output{Stdout: []byte("Nov 26 mosquitto[7]: Error: Unable to open config file.\nNov 26 systemd[1]: mosquitto.service: Failed with result 'exit-code'.\n")}, nil
	}
	verb := cmd.Args[0]
	switch verb {
	case "is-active":
		if f.state != "active" {
			return fail(3, f.state+"\n", "")
		}
		return system.Output{Stdout: []byte("active\n")}, nil
	case "is-enabled":
		if f.enabled == "not-found" {
			return fail(1, "", "Failed to get unit file state for mosquitto.service: No such file or directory")
		}
		if f.enabled != "enabled" {
			return fail(1, f.enabled+"\n", "")
		}
		return system.Output{Stdout: []byte("enabled\n")}, nil
	case "enable":
		f.enabled = "enabled"
	case "daemon-reload":
		data, _ := os.ReadFile(f.dropIn)
		f.loaded = string(data)
	case "start", "restart":
		f.close()
		f.startedWith = f.loaded
		data, _ := os.ReadFile(f.conf)
		switch content := string(data); {
		case f.unreadable && f.user != "":
			f.state = "activating"
			return fail(1, "", "Job for mosquitto.service failed because the control process exited with error code.")
		case strings.HasPrefix(content, "broken"):
			f.state = "failed"
			return fail(1, "", "Job for mosquitto.service failed because the control process exited with error code.")
		case content == "nolisten":
			f.state = "active"
		default:
			f.state = "active"
			f.listen()
		}
	case "stop":
		f.close()
		f.state = "inactive"
	case "reload":
		if f.state != "active" {
			return fail(1, "", "mosquitto.service is not active, cannot reload.")
		}
		if f.noKill {
			return fail(1, "", "Job for mosquitto.service failed.")
		}
		if f.unreadable {
			lf, err := os.OpenFile(f.log, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return system.Output{}, err
			}
			lf.WriteString("1796314436: Reloading config.\n1796314436: Error: Unable to open config file '/etc/mosquitto/conf.d/local.conf'.\n1796314436: Error found at /etc/mosquitto/mosquitto.conf:13.\n")
			lf.Close()
		}
	case "show":
		if strings.Join(cmd.Args, " ") == "show -p User --value mosquitto" {
			return system.Output{Stdout: []byte(f.user + "\n")}, nil
		}
	}
	return system.Output{}, nil
}

func (f *fakeUnit) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// service is a Service on the host's root ("/"), so it is manageable, with
// its runner faked and its only broker file in a temp folder.
func service(f *fakeUnit, dryRun bool) *Service { return serviceOn(f, f, dryRun) }

// serviceOn is service with the commands going to runner (f wrapped).
func serviceOn(runner system.Runner, f *fakeUnit, dryRun bool) *Service {
	var sys system.System = system.NewReal("/", system.WithRunner(runner))
	if dryRun {
		sys = system.NewDryRun(sys)
	}
	s := New(sys)
	s.Booted = func() bool { return true }
	s.BrokerLog = nil
	s.UpTimeout = 300 * time.Millisecond
	s.Poll = 20 * time.Millisecond
	s.Listeners = func(context.Context) ([]Listener, error) {
		return []Listener{{Port: f.port, Bind: "127.0.0.1"}}, nil
	}
	return s
}

func TestSettle(t *testing.T) {
	tests := []struct {
		name      string
		state     string // before the run
		before    string // the config file before the run
		write     string // what the run writes ("" writes nothing)
		need      system.Need
		dryRun    bool
		booted    bool
		wantCalls []string
		wantErr   error
		wantNoErr bool
		action    system.Action
		detail    string // the change's detail, when it matters
		wantFile  string // the config file after Settle
		wantState string
	}{
		{name: "nothing changed", state: "active", need: system.NeedNothing, booted: true, wantNoErr: true, action: system.Noop, wantState: "active"},
		{name: "no systemd", state: "active", need: system.NeedRestart, booted: false, wantNoErr: true, action: system.Noop, wantState: "active"},
		{name: "stopped broker is left stopped", state: "inactive", need: system.NeedRestart, booted: true,
			wantCalls: []string{"systemctl is-active mosquitto"}, wantNoErr: true, action: system.Noop, wantState: "inactive"},
		{name: "reload", state: "active", need: system.NeedReload, booted: true, write: "good2",
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl reload mosquitto", "systemctl is-active mosquitto"},
			wantNoErr: true, action: system.Reload, wantFile: "good2", wantState: "active"},
		{name: "restart", state: "active", need: system.NeedRestart, booted: true, write: "good2",
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl restart mosquitto", "systemctl is-active mosquitto"},
			wantNoErr: true, action: system.Restart, wantFile: "good2", wantState: "active"},
		{name: "broken config is rolled back", state: "active", need: system.NeedRestart, booted: true, write: "broken",
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl restart mosquitto",
				"journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager",
				"systemctl reset-failed mosquitto", "systemctl restart mosquitto", "systemctl is-active mosquitto"},
			wantErr: errs.ErrRolledBack, wantFile: "good", wantState: "active"},
		{name: "port not accepting is rolled back", state: "active", need: system.NeedRestart, booted: true, write: "nolisten",
			wantErr: errs.ErrRolledBack, wantFile: "good", wantState: "active"},
		{name: "rollback that can't help", state: "active", before: "broken", need: system.NeedRestart, booted: true, write: "broken2",
			wantFile: "broken", wantState: "failed"},
		{name: "dry run waits for nothing", state: "active", need: system.NeedRestart, booted: true, dryRun: true, write: "broken",
			wantCalls: []string{"systemctl is-active mosquitto"}, wantNoErr: true, action: system.Restart, detail: "systemctl restart mosquitto",
			wantFile: "good", wantState: "active"},
		{name: "dry run reload prints its command", state: "active", need: system.NeedReload, booted: true, dryRun: true, write: "good2",
			wantCalls: []string{"systemctl is-active mosquitto"}, wantNoErr: true, action: system.Reload, detail: "systemctl reload mosquitto",
			wantFile: "good", wantState: "active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeUnit(t, tt.state)
			if tt.before != "" {
				os.WriteFile(f.conf, []byte(tt.before), 0o644)
			}
			s := service(f, tt.dryRun)
			s.Booted = func() bool { return tt.booted }
			if tt.write != "" {
				if _, err := s.Sys.WriteFile(f.conf, []byte(tt.write), system.Attr{Mode: 0o644}); err != nil {
					t.Fatal(err)
				}
			}
			change, err := s.Settle(context.Background(), tt.need)
			switch {
			case tt.wantNoErr && err != nil:
				t.Fatalf("Settle: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Settle error %v, want %v", err, tt.wantErr)
			case !tt.wantNoErr && err == nil:
				t.Fatalf("Settle succeeded, want an error")
			case tt.wantErr == nil && errors.Is(err, errs.ErrRolledBack):
				t.Fatalf("Settle: %v; the broker is not up, so it must not claim a rollback", err)
			}
			if err == nil && change.Action != tt.action {
				t.Errorf("action %q, want %q (%+v)", change.Action, tt.action, change)
			}
			if tt.detail != "" && change.Detail != tt.detail {
				t.Errorf("detail %q, want %q", change.Detail, tt.detail)
			}
			if err != nil {
				var se *Error
				if !errors.As(err, &se) || len(se.JournalLines()) == 0 {
					t.Errorf("error %v carries no journal lines", err)
				}
			}
			if tt.wantCalls != nil {
				if d := cmp.Diff(tt.wantCalls, f.Calls()); d != "" {
					t.Errorf("commands (-want +got):\n%s", d)
				}
			}
			if tt.wantFile != "" {
				got, _ := os.ReadFile(f.conf)
				if string(got) != tt.wantFile {
					t.Errorf("config after Settle %q, want %q", got, tt.wantFile)
				}
			}
			if f.state != tt.wantState {
				t.Errorf("unit %s after Settle, want %s", f.state, tt.wantState)
			}
		})
	}
}

// A reload the broker refused (a conf.d file that is not mosqprov's and
// that its user can't read; it runs on, without the files after it) is
// rolled back: the files put back, and the broker left up on them. Under
// 2.0's unit (no User=) the broker is restarted on them, as root; under
// 2.1's (User=mosquitto) a restart reads every file as mosquitto and stops
// at the same one, so it is reloaded instead, never restarted: the broker
// that was serving stays up (seen with 2.1.2 under a real systemd,
// TestApplyInRealSystemd/trixie/mosquitto_2.1 in pkg/plan).
func TestSettleRefusedReloadUnitUser(t *testing.T) {
	for _, c := range []struct {
		user string
		want []string // after the refused reload's journal
	}{
		{"", []string{"systemctl show -p User --value mosquitto", "systemctl reset-failed mosquitto", "systemctl restart mosquitto", "systemctl is-active mosquitto"}},
		{"mosquitto", []string{"systemctl show -p User --value mosquitto", "systemctl reload mosquitto", "systemctl is-active mosquitto"}},
	} {
		t.Run("User="+c.user, func(t *testing.T) {
			f := newFakeUnit(t, "active")
			f.user, f.unreadable = c.user, true
			f.log = filepath.Join(t.TempDir(), "mosquitto.log")
			if err := os.WriteFile(f.log, []byte("1796314430: mosquitto version 2.1.2 running\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := service(f, false)
			s.LogFiles = func() []string { return []string{f.log} }
			if _, err := s.Sys.WriteFile(f.conf, []byte("good2"), system.Attr{Mode: 0o644}); err != nil {
				t.Fatal(err)
			}
			_, err := s.Settle(context.Background(), system.NeedReload)
			if !errors.Is(err, errs.ErrRolledBack) || !strings.Contains(err.Error(), errReloadRefused.Error()) || !strings.Contains(err.Error(), "local.conf") {
				t.Fatalf("Settle: %v, want a rollback of the refused reload", err)
			}
			want := append([]string{"systemctl is-active mosquitto", "systemctl reload mosquitto", "systemctl is-active mosquitto",
				"journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager"}, c.want...)
			if d := cmp.Diff(want, f.Calls()); d != "" {
				t.Errorf("commands (-want +got):\n%s", d)
			}
			if got, _ := os.ReadFile(f.conf); string(got) != "good" || f.state != "active" || f.ln == nil {
				t.Errorf("after the rollback: file %q, unit %s, listening %v; want the old file and the broker up", got, f.state, f.ln != nil)
			}
		})
	}
}

// A restart that fails with no file changed has nothing to roll back: the
// error says why (journal) but is not ErrRolledBack.
func TestSettleFailureWithoutChanges(t *testing.T) {
	f := newFakeUnit(t, "active")
	os.WriteFile(f.conf, []byte("broken"), 0o644)
	s := service(f, false)
	_, err := s.Settle(context.Background(), system.NeedRestart)
	if err == nil || errors.Is(err, errs.ErrRolledBack) {
		t.Fatalf("Settle: %v, want a failure that is not a rollback", err)
	}
	want := []string{"systemctl is-active mosquitto", "systemctl restart mosquitto", "journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager"}
	if d := cmp.Diff(want, f.Calls()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
}

// cancelOnRestart is a person pressing Ctrl-C while `systemctl restart`
// runs: that restart fails with ctx's error, and from then on every
// command run with the cancelled ctx fails at once, as exec.CommandContext
// makes it.
type cancelOnRestart struct {
	*fakeUnit
	cancel    context.CancelFunc
	cancelled bool
}

func (c *cancelOnRestart) Run(ctx context.Context, cmd system.Cmd) (system.Output, error) {
	if !c.cancelled && cmd.String() == "systemctl restart mosquitto" {
		c.cancelled = true
		c.cancel()
	}
	if err := ctx.Err(); err != nil {
		return system.Output{}, err
	}
	return c.fakeUnit.Run(ctx, cmd)
}

// Ctrl-C during the restart still gets a whole rollback: the old file back
// and the broker restarted on it, not left on files that are gone.
func TestSettleRollbackSurvivesCancel(t *testing.T) {
	f := newFakeUnit(t, "active")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := serviceOn(&cancelOnRestart{fakeUnit: f, cancel: cancel}, f, false)
	if _, err := s.Sys.WriteFile(f.conf, []byte("good2"), system.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Settle(ctx, system.NeedRestart)
	if !errors.Is(err, errs.ErrRolledBack) || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Settle: %v, want a rollback after the cancel", err)
	}
	want := []string{"systemctl is-active mosquitto", "journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager",
		"systemctl reset-failed mosquitto", "systemctl restart mosquitto", "systemctl is-active mosquitto"}
	if d := cmp.Diff(want, f.Calls()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	if got, _ := os.ReadFile(f.conf); string(got) != "good" || f.state != "active" || f.ln == nil {
		t.Errorf("after the rollback: file %q, unit %s, listening %v; want the old file and the broker up on it", got, f.state, f.ln != nil)
	}
}

// A file the run created is removed by the rollback.
func TestSettleRollbackRemovesCreatedFile(t *testing.T) {
	f := newFakeUnit(t, "active")
	s := service(f, false)
	created := filepath.Join(filepath.Dir(f.conf), "new.conf")
	if _, err := s.Sys.WriteFile(created, []byte("x"), system.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sys.WriteFile(f.conf, []byte("broken"), system.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(context.Background(), system.NeedRestart); !errors.Is(err, errs.ErrRolledBack) {
		t.Fatalf("Settle: %v, want ErrRolledBack", err)
	}
	if _, err := os.Stat(created); !os.IsNotExist(err) {
		t.Errorf("%s survived the rollback (%v)", created, err)
	}
}

func TestOperations(t *testing.T) {
	tests := []struct {
		name      string
		state     string
		enabled   string
		conf      string
		noKill    bool
		op        func(*Service, context.Context) (system.Change, error)
		wantCalls []string
		changed   bool
		wantErr   bool
		wantState string
	}{
		{name: "enable when disabled", state: "active", enabled: "disabled", op: (*Service).Enable,
			wantCalls: []string{"systemctl is-enabled mosquitto", "systemctl enable mosquitto"}, changed: true, wantState: "active"},
		{name: "enable is idempotent", state: "active", enabled: "enabled", op: (*Service).Enable,
			wantCalls: []string{"systemctl is-enabled mosquitto"}, wantState: "active"},
		{name: "enable masked fails with journal", state: "inactive", enabled: "masked", op: (*Service).Enable,
			wantCalls: []string{"systemctl is-enabled mosquitto", "journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager"}, wantErr: true, wantState: "inactive"},
		{name: "enable not installed", state: "inactive", enabled: "not-found", op: (*Service).Enable,
			wantCalls: []string{"systemctl is-enabled mosquitto", "journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager"}, wantErr: true, wantState: "inactive"},
		{name: "start when stopped", state: "inactive", op: (*Service).Start,
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl start mosquitto", "systemctl is-active mosquitto"}, changed: true, wantState: "active"},
		{name: "start is idempotent", state: "active", op: (*Service).Start,
			wantCalls: []string{"systemctl is-active mosquitto"}, wantState: "active"},
		{name: "start failure shows journal", state: "inactive", conf: "broken", op: (*Service).Start,
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl start mosquitto", "journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager"}, wantErr: true, wantState: "failed"},
		{name: "start but port not accepting", state: "inactive", conf: "nolisten", op: (*Service).Start, wantErr: true, wantState: "active"},
		{name: "stop when running", state: "active", op: (*Service).Stop,
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl stop mosquitto"}, changed: true, wantState: "inactive"},
		{name: "stop is idempotent", state: "inactive", op: (*Service).Stop,
			wantCalls: []string{"systemctl is-active mosquitto"}, wantState: "inactive"},
		{name: "restart always runs", state: "active", op: (*Service).Restart,
			wantCalls: []string{"systemctl restart mosquitto", "systemctl is-active mosquitto"}, changed: true, wantState: "active"},
		{name: "reload when running", state: "active", op: (*Service).Reload,
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl reload mosquitto", "systemctl is-active mosquitto"}, changed: true, wantState: "active"},
		{name: "reload when stopped does nothing", state: "inactive", op: (*Service).Reload,
			wantCalls: []string{"systemctl is-active mosquitto"}, wantState: "inactive"},
		{name: "reload without /bin/kill sends SIGHUP through systemd", state: "active", noKill: true, op: (*Service).Reload,
			wantCalls: []string{"systemctl is-active mosquitto", "systemctl reload mosquitto", "systemctl is-active mosquitto",
				"systemctl kill --kill-who=main --signal=SIGHUP mosquitto", "systemctl is-active mosquitto"}, changed: true, wantState: "active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeUnit(t, tt.state)
			if tt.enabled != "" {
				f.enabled = tt.enabled
			}
			f.noKill = tt.noKill
			if tt.conf != "" {
				os.WriteFile(f.conf, []byte(tt.conf), 0o644)
			}
			change, err := tt.op(service(f, false), context.Background())
			if tt.wantErr {
				var se *Error
				if !errors.As(err, &se) || len(se.JournalLines()) == 0 {
					t.Fatalf("error %v, want one with journal lines", err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if change.Changed != tt.changed {
				t.Errorf("changed %v, want %v (%+v)", change.Changed, tt.changed, change)
			}
			if tt.wantCalls != nil {
				if d := cmp.Diff(tt.wantCalls, f.Calls()); d != "" {
					t.Errorf("commands (-want +got):\n%s", d)
				}
			}
			if f.state != tt.wantState {
				t.Errorf("unit %s, want %s", f.state, tt.wantState)
			}
		})
	}
}

func TestDryRunRecordsCommands(t *testing.T) {
	f := newFakeUnit(t, "inactive")
	s := service(f, true)
	change, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if change.Detail != "systemctl start mosquitto" || !change.Changed {
		t.Errorf("change %+v, want the start command", change)
	}
	if d := cmp.Diff([]string{"systemctl is-active mosquitto"}, f.Calls()); d != "" {
		t.Errorf("dry run ran (-want +got):\n%s", d)
	}
	var lines []string
	for _, c := range s.Sys.(*system.DryRun).Commands() {
		lines = append(lines, c.String())
	}
	if d := cmp.Diff([]string{"systemctl start mosquitto"}, lines); d != "" {
		t.Errorf("recorded (-want +got):\n%s", d)
	}
}

func TestRequire(t *testing.T) {
	f := newFakeUnit(t, "active")
	s := service(f, false)
	s.Booted = func() bool { return false }
	for _, op := range []func(*Service, context.Context) (system.Change, error){(*Service).Enable, (*Service).Start, (*Service).Stop, (*Service).Restart, (*Service).Reload} {
		if _, err := op(s, context.Background()); !errors.Is(err, errs.ErrNoSystemd) {
			t.Errorf("without systemd: %v, want ErrNoSystemd", err)
		}
	}
	if _, err := s.Status(context.Background()); !errors.Is(err, errs.ErrNoSystemd) {
		t.Errorf("status without systemd: %v, want ErrNoSystemd", err)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("ran %v without systemd", f.Calls())
	}
	rooted := New(system.NewReal(t.TempDir(), system.WithRunner(f)))
	rooted.Booted = func() bool { return true }
	if _, err := rooted.Start(context.Background()); !errs.IsInput(err) {
		t.Errorf("with --root: %v, want an input error", err)
	}
}

func TestStatus(t *testing.T) {
	rec := &system.Recorder{}
	rec.On("systemctl show mosquitto", system.Output{Stdout: []byte("MainPID=412\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nActiveEnterTimestamp=Thu 2026-11-26 06:00:00 UTC\n")}, nil)
	rec.On("journalctl", system.Output{Stdout: []byte("a\nb\n")}, nil)
	port := freePort(t)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := freePort(t)
	s := New(system.NewReal("/", system.WithRunner(rec)))
	s.Booted = func() bool { return true }
	s.Listeners = func(context.Context) ([]Listener, error) {
		return []Listener{{Port: port}, {Port: closed, Bind: "127.0.0.1"}}, nil
	}
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Unit: "mosquitto", LoadState: "loaded", ActiveState: "active", SubState: "running", Enabled: "enabled", MainPID: 412,
		Since: "Thu 2026-11-26 06:00:00 UTC", Journal: []string{"a", "b"},
		Listeners: []ListenerStatus{{Addr: fmt.Sprintf("127.0.0.1:%d", port), Accepting: true}, {Addr: fmt.Sprintf("127.0.0.1:%d", closed)}}}
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
	for _, c := range rec.Calls {
		if !c.ReadOnly {
			t.Errorf("status ran a mutating command: %s", c)
		}
	}
}

// The configuration's listeners are read by pkg/conf (TestBound there);
// here only where a check connects.
func TestListenerAddr(t *testing.T) {
	for bind, want := range map[string]string{"": "127.0.0.1:1", "0.0.0.0": "127.0.0.1:1", "::": "[::1]:1", "10.0.0.2": "10.0.0.2:1", "::1": "[::1]:1"} {
		if got := (Listener{Port: 1, Bind: bind}).Addr(); got != want {
			t.Errorf("Addr of %q is %s, want %s", bind, got, want)
		}
	}
}

// A failure shows the journal and then the broker's own log file, where
// Debian's configuration sends the reason ("Address already in use").
func TestJournalWithBrokerLog(t *testing.T) {
	root := t.TempDir()
	rec := (&system.Recorder{}).On("journalctl", system.Output{Stdout: []byte("j1\nj2\n")}, nil)
	sys := system.NewReal(root, system.WithRunner(rec))
	os.MkdirAll(sys.HostPath("/var/log/mosquitto"), 0o755)
	var log strings.Builder
	for i := 1; i <= 15; i++ {
		fmt.Fprintf(&log, "line %d\n", i)
	}
	os.WriteFile(sys.HostPath("/var/log/mosquitto/mosquitto.log"), []byte(log.String()), 0o644)
	s := New(sys)
	s.BrokerLog = func() []string {
		return LogTail(sys, []string{"/var/log/mosquitto/missing.log", "/var/log/mosquitto/mosquitto.log"})
	}
	got := s.Journal(context.Background())
	want := []string{"j1", "j2", "/var/log/mosquitto/mosquitto.log (last lines):",
		"line 6", "line 7", "line 8", "line 9", "line 10", "line 11", "line 12", "line 13", "line 14", "line 15"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
}

// What a person reads after a restart: the addresses the broker listens on,
// "*" for every interface, not the loopback address the check dialled.
func TestDescribeShowsBindAddresses(t *testing.T) {
	got := describe([]Listener{{Port: 1883, Bind: "127.0.0.1"}, {Port: 8883}, {Port: 9443, Bind: "::"}, {Port: 8884, Bind: "10.0.0.2"}})
	want := "active, accepting on 127.0.0.1:1883 *:8883 [::]:9443 10.0.0.2:8884 (* is every interface)"
	if got != want {
		t.Errorf("describe:\n got %s\nwant %s", got, want)
	}
	if got := describe([]Listener{{Port: 1883, Bind: "127.0.0.1"}}); got != "active, accepting on 127.0.0.1:1883" {
		t.Errorf("describe of a loopback listener: %s", got)
	}
}

// A restart that fails after this run wrote the open-file drop-in (and ran
// daemon-reload) puts back both the configuration and the drop-in, and
// runs daemon-reload again before restarting: otherwise systemd would start
// the broker on the old configuration with the new limit.
func TestSettleRollbackRestoresDropIn(t *testing.T) {
	for _, before := range []string{"", "[Service]\nLimitNOFILE=1500\n"} {
		name := "created"
		if before != "" {
			name = "changed"
		}
		t.Run(name, func(t *testing.T) {
			f := newFakeUnit(t, "active")
			unitDir := t.TempDir()
			f.dropIn = filepath.Join(unitDir, "mosquitto.service.d", "mosqprov-limits.conf")
			if before != "" {
				before = limitsHeader + "\n" + before
				os.MkdirAll(filepath.Dir(f.dropIn), 0o755)
				os.WriteFile(f.dropIn, []byte(before), 0o644)
				f.loaded, f.startedWith = before, before
			}
			s := service(f, false)
			s.UnitDir = unitDir
			ctx := context.Background()
			if _, err := ensureLimitsAt(ctx, s.Sys, f.dropIn, 2064, true); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(f.loaded, "LimitNOFILE=2064") {
				t.Fatalf("systemd has %q after the drop-in was written", f.loaded)
			}
			if _, err := s.Sys.WriteFile(f.conf, []byte("broken"), system.Attr{Mode: 0o644}); err != nil {
				t.Fatal(err)
			}
			_, err := s.Settle(ctx, system.NeedRestart)
			if !errors.Is(err, errs.ErrRolledBack) || !strings.Contains(err.Error(), "(2 file(s))") {
				t.Fatalf("Settle: %v, want a rollback of 2 files", err)
			}
			want := []string{"systemctl daemon-reload", "systemctl is-active mosquitto", "systemctl restart mosquitto",
				"journalctl --sync", "journalctl -u mosquitto -n 20 --no-pager",
				"systemctl daemon-reload", "systemctl reset-failed mosquitto", "systemctl restart mosquitto", "systemctl is-active mosquitto"}
			if d := cmp.Diff(want, f.Calls()); d != "" {
				t.Errorf("commands (-want +got):\n%s", d)
			}
			got, err := os.ReadFile(f.dropIn)
			if before == "" && !os.IsNotExist(err) || before != "" && string(got) != before {
				t.Errorf("drop-in after the rollback: %q %v, want %q", got, err, before)
			}
			if conf, _ := os.ReadFile(f.conf); string(conf) != "good" || f.state != "active" {
				t.Errorf("after the rollback: config %q, unit %s", conf, f.state)
			}
			if f.startedWith != before {
				t.Errorf("the broker was restarted with the drop-in %q, want %q", f.startedWith, before)
			}
		})
	}
}
