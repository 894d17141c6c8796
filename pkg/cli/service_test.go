package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// svcApp is an App on the host's root ("/", so the service is manageable)
// whose commands go to runner, with systemd detection answered by booted.
func svcApp(runner system.Runner, booted bool, dryRun bool) (*App, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	var sys system.System = system.NewReal("/", system.WithRunner(runner))
	if dryRun {
		sys = system.NewDryRun(sys)
	}
	a.Sys = sys
	a.Service = systemd.New(sys)
	a.Service.Booted = func() bool { return booted }
	a.Service.BrokerLog = nil
	a.Service.UpTimeout = 200 * time.Millisecond
	a.Service.Poll = 20 * time.Millisecond
	a.Service.Listeners = func(context.Context) ([]systemd.Listener, error) { return nil, nil }
	return a, &out, &errOut
}

func TestServiceWithoutSystemd(t *testing.T) {
	for _, action := range []string{"status", "enable", "start", "stop", "restart", "reload"} {
		rec := &system.Recorder{}
		a, _, errOut := svcApp(rec, false, false)
		if code := Run(context.Background(), a, []string{"service", action}); code != ExitNoSystemd {
			t.Errorf("service %s without systemd: exit %d, want %d", action, code, ExitNoSystemd)
		}
		if !strings.Contains(errOut.String(), "systemd is not running on this host (PID 1 is not systemd)") {
			t.Errorf("service %s: stderr %q doesn't say why", action, errOut)
		}
		if len(rec.Calls) != 0 {
			t.Errorf("service %s ran %v without systemd", action, rec.Lines())
		}
	}
}

func TestServiceStartIdempotent(t *testing.T) {
	rec := (&system.Recorder{}).On("systemctl is-active", system.Output{Stdout: []byte("active\n")}, nil)
	a, out, _ := svcApp(rec, true, false)
	if code := Run(context.Background(), a, []string{"service", "start"}); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if got := out.String(); got != "= service mosquitto: unchanged (already active)\n" {
		t.Errorf("output %q", got)
	}
}

// --dry-run shows the systemctl command it would run and runs only queries.
func TestServiceDryRun(t *testing.T) {
	rec := (&system.Recorder{}).On("systemctl is-enabled", system.Output{Stdout: []byte("disabled\n")}, &system.ExitError{Code: 1})
	a, out, _ := svcApp(rec, true, true)
	if code := Run(context.Background(), a, []string{"--dry-run", "service", "enable"}); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if got := out.String(); got != "~ service mosquitto: would run (systemctl enable mosquitto)\n" {
		t.Errorf("output %q", got)
	}
	if got := strings.Join(rec.Lines(), "; "); got != "systemctl is-enabled mosquitto" {
		t.Errorf("ran %q", got)
	}
}

// failingRestart is systemctl for a broker that fails to start on the new
// file and starts again on the restored one.
type failingRestart struct {
	system.Recorder
	mu       sync.Mutex
	restarts int
}

func (f *failingRestart) Run(ctx context.Context, cmd system.Cmd) (system.Output, error) {
	f.Recorder.Run(ctx, cmd)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case cmd.Name == "journalctl":
		return system.Output{Stdout: []byte("mosquitto[9]: Error: Invalid bridge configuration.\n")}, nil
	case len(cmd.Args) > 0 && cmd.Args[0] == "restart":
		f.restarts++
		if f.restarts == 1 {
			return system.Output{}, &system.ExitError{Cmd: cmd.String(), Code: 1, Stderr: "Job for mosquitto.service failed."}
		}
	}
	return system.Output{Stdout: []byte("active\n")}, nil
}

// A command whose change the broker refuses exits 5, restores the file and
// prints the journal lines after the error; json carries them too.
func TestSettleRollbackOutput(t *testing.T) {
	for _, output := range []string{"text", "json"} {
		t.Run(output, func(t *testing.T) {
			f := &failingRestart{}
			a, out, errOut := svcApp(f, true, false)
			a.Globals.Output = output
			if err := a.init("conf write"); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "mosqprov.conf")
			os.WriteFile(p, []byte("old\n"), 0o644)
			if _, err := a.Sys.WriteFile(p, []byte("new\n"), system.Attr{Mode: 0o644}); err != nil {
				t.Fatal(err)
			}
			a.Need(system.NeedRestart)
			code := a.finish(a.Settle(context.Background()))
			if code != ExitRolledBack {
				t.Fatalf("exit %d, want %d; stderr %s", code, ExitRolledBack, errOut)
			}
			if data, _ := os.ReadFile(p); string(data) != "old\n" {
				t.Errorf("file after rollback %q, want the old content", data)
			}
			if output == "text" {
				want := "mosqprov: restart mosquitto: broker failed to start with the new files; previous files restored (1 file(s)): systemctl restart mosquitto: exit status 1: Job for mosquitto.service failed.\n" +
					"last journal lines (journalctl -u mosquitto -n 20 --no-pager):\n  mosquitto[9]: Error: Invalid bridge configuration.\n"
				if errOut.String() != want {
					t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
				}
				return
			}
			var rep Report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if len(rep.Journal) != 1 || !strings.Contains(rep.Error, "previous files restored") {
				t.Errorf("json report %+v lacks the journal or the error", rep)
			}
		})
	}
}

func TestInstallInstalled(t *testing.T) {
	rec := (&system.Recorder{}).On("dpkg-query", system.Output{Stdout: []byte("mosquitto\tinstalled\t2.0.11-1.2+deb12u2\nmosquitto-clients\tinstalled\t2.0.11-1.2+deb12u2\n")}, nil)
	a, out, _ := svcApp(rec, true, false)
	if code := Run(context.Background(), a, []string{"install"}); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	want := "= package mosquitto: unchanged (2.0.11-1.2+deb12u2)\n= package mosquitto-clients: unchanged (2.0.11-1.2+deb12u2)\nbroker: mosquitto 2.0.11 (2.0 series)\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if len(rec.Calls) != 1 {
		t.Errorf("ran %v, want only dpkg-query", rec.Lines())
	}
}

// --dry-run install prints the apt-get commands it would run.
func TestInstallDryRun(t *testing.T) {
	rec := (&system.Recorder{}).
		On("dpkg-query", system.Output{}, &system.ExitError{Code: 1, Stderr: "dpkg-query: no packages found matching mosquitto"}).
		On("apt-cache policy", system.Output{Stdout: []byte("mosquitto:\n  Candidate: 2.0.11-1.2+deb12u2\nmosquitto-clients:\n  Candidate: 2.0.11-1.2+deb12u2\n")}, nil)
	a, out, _ := svcApp(rec, true, true)
	if code := Run(context.Background(), a, []string{"--dry-run", "install"}); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"~ packages: would run (DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=600 mosquitto mosquitto-clients)\n",
		"+ package mosquitto: would create (candidate 2.0.11-1.2+deb12u2)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, c := range rec.Calls {
		if !c.ReadOnly {
			t.Errorf("dry run ran %s", c)
		}
	}
}
