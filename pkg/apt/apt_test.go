package apt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/mosqprov/mosqprov/pkg/system"
)

const (
	query = "dpkg-query -W -f '${Package}\t${db:Status-Status}\t${Version}\n' mosquitto mosquitto-clients"
	// Read-only: no binary cache is written (plan and --dry-run write nothing).
	policy   = "apt-cache policy mosquitto mosquitto-clients -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="
	update   = "apt-get update -o DPkg::Lock::Timeout=600"
	install  = "apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=600 mosquitto mosquitto-clients"
	version  = "2.0.11-1.2+deb12u2"
	busyLock = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 812 (unattended-upgr)"
)

var (
	installedOut = system.Output{Stdout: []byte("mosquitto\tinstalled\t" + version + "\nmosquitto-clients\tinstalled\t" + version + "\n")}
	knownOut     = system.Output{Stdout: []byte("mosquitto:\n  Installed: (none)\n  Candidate: " + version + "\n  Version table:\n" +
		"mosquitto-clients:\n  Installed: (none)\n  Candidate: " + version + "\n")}
)

// world is apt and dpkg as the Recorder answers them; it changes the
// answers the way the real commands change the system: after apt-get
// install dpkg-query reports the packages installed, after apt-get update
// apt-cache knows them, and a held lock makes apt-get fail `busy` times.
type world struct {
	rec  *system.Recorder
	busy int
}

func newWorld(installed, known bool) *world {
	w := &world{rec: &system.Recorder{}}
	notFound := &system.ExitError{Cmd: "dpkg-query", Code: 1, Stderr: "dpkg-query: no packages found matching mosquitto"}
	w.rec.On("dpkg-query", system.Output{}, notFound)
	if installed {
		w.rec.On("dpkg-query", installedOut, nil)
	}
	if known {
		w.rec.On("apt-cache policy", knownOut, nil)
	}
	return w
}

func (w *world) Run(ctx context.Context, cmd system.Cmd) (system.Output, error) {
	line := cmd.String()
	if strings.HasPrefix(line, "apt-get") && w.busy > 0 {
		w.busy--
		w.rec.Run(ctx, cmd)
		return system.Output{ExitCode: 100}, &system.ExitError{Cmd: line, Code: 100, Stderr: busyLock}
	}
	out, err := w.rec.Run(ctx, cmd)
	switch {
	case strings.HasPrefix(line, "apt-get install") && err == nil:
		w.rec.On("dpkg-query", installedOut, nil)
	case strings.HasPrefix(line, "apt-get update") && err == nil:
		w.rec.On("apt-cache policy", knownOut, nil)
	}
	return out, err
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// installer is an Installer on the host's root with every host-facing part
// replaced: the commands (world), the clock, the lock and the list stamp.
func installer(t *testing.T, w *world, listsAge time.Duration, lockHeld int) (*Installer, *clock, *[]string) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)}
	in := NewInstaller(system.NewReal("/", system.WithRunner(w), system.WithClock(clk.Now)))
	stamp := filepath.Join(t.TempDir(), "update-success-stamp")
	if listsAge >= 0 {
		if err := os.WriteFile(stamp, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(stamp, clk.now.Add(-listsAge), clk.now.Add(-listsAge))
	}
	in.StampPaths = []string{stamp}
	in.Sleep = func(_ context.Context, d time.Duration) error { clk.now = clk.now.Add(d); return nil }
	var notes []string
	in.Notify = func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) }
	in.LockHolder = func() (Holder, bool) {
		if lockHeld != 0 {
			lockHeld--
			return Holder{Path: "/var/lib/dpkg/lock-frontend", PID: 812, Name: "unattended-upgr"}, true
		}
		return Holder{}, false
	}
	return in, clk, &notes
}

func TestEnsure(t *testing.T) {
	tests := []struct {
		name      string
		installed bool
		known     bool
		listsAge  time.Duration // -1: no stamp at all
		lockHeld  int           // -1: forever
		busy      int
		wantCalls []string
		wantErr   string
		wantNotes int
		changed   bool
	}{
		{name: "installed runs nothing", installed: true, listsAge: 48 * time.Hour,
			wantCalls: []string{query}},
		{name: "not installed, fresh lists", known: true, listsAge: time.Hour,
			wantCalls: []string{query, policy, install, query}, changed: true},
		{name: "not installed, stale lists", known: true, listsAge: 25 * time.Hour,
			wantCalls: []string{query, policy, update, install, query}, changed: true},
		{name: "not installed, never updated", known: true, listsAge: -1,
			wantCalls: []string{query, policy, update, install, query}, changed: true},
		{name: "unknown to apt: update first", known: false, listsAge: time.Hour,
			wantCalls: []string{query, policy, update, policy, install, query}, changed: true},
		{name: "lock held then released", known: true, listsAge: time.Hour, lockHeld: 3,
			// three looks 2s apart: apt gets what is left of the 10 minutes
			wantCalls: []string{query, policy, strings.Replace(install, "=600", "=594", 1), query}, wantNotes: 2, changed: true},
		{name: "lock timeout", known: true, listsAge: time.Hour, lockHeld: -1,
			wantCalls: []string{query, policy}, wantErr: "still held by process 812 (unattended-upgr) after 10m0s (--lock-timeout)", wantNotes: 1},
		{name: "apt finds the lock busy, then free", known: true, listsAge: time.Hour, busy: 1,
			wantCalls: []string{query, policy, install, "apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=598 mosquitto mosquitto-clients", query}, changed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(tt.installed, tt.known)
			w.busy = tt.busy
			in, _, notes := installer(t, w, tt.listsAge, tt.lockHeld)
			res, err := in.Ensure(context.Background())
			changes := res.Changes
			if d := cmp.Diff(tt.wantCalls, w.rec.Lines()); d != "" {
				t.Errorf("commands (-want +got):\n%s", d)
			}
			if len(*notes) != tt.wantNotes {
				t.Errorf("messages %q, want %d", *notes, tt.wantNotes)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Broker != "2.0.11" || res.Series != "2.0" {
				t.Errorf("broker version %q series %q, want 2.0.11 / 2.0", res.Broker, res.Series)
			}
			changed := false
			for _, c := range changes {
				changed = changed || c.Changed
			}
			if changed != tt.changed {
				t.Errorf("changed %v, want %v: %+v", changed, tt.changed, changes)
			}
			last := changes[len(changes)-2:]
			for i, name := range Packages {
				if last[i].What != "package "+name || last[i].Detail != version {
					t.Errorf("change %+v, want package %s with its version", last[i], name)
				}
			}
			for _, c := range w.rec.Calls {
				if c.Name == "apt-get" && !cmp.Equal(c.Env, []string{"DEBIAN_FRONTEND=noninteractive"}) {
					t.Errorf("%s runs with env %q", c, c.Env)
				}
			}
		})
	}
}

// In a dry run the queries run for real, apt-get is only recorded, and the
// report says what would be installed.
func TestEnsureDryRun(t *testing.T) {
	w := newWorld(false, true)
	in, clk, _ := installer(t, w, 30*time.Hour, 0)
	real := system.NewReal("/", system.WithRunner(w), system.WithClock(clk.Now))
	dry := system.NewDryRun(real)
	in.Sys = dry
	res, err := in.Ensure(context.Background())
	changes := res.Changes
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{query, policy}, w.rec.Lines()); d != "" {
		t.Errorf("ran (-want +got):\n%s", d)
	}
	var recorded []string
	for _, c := range dry.Commands() {
		recorded = append(recorded, c.String())
	}
	if d := cmp.Diff([]string{update, install}, recorded); d != "" {
		t.Errorf("would run (-want +got):\n%s", d)
	}
	if res.Broker != "2.0.11" {
		t.Errorf("dry run reports broker %q, want the candidate 2.0.11", res.Broker)
	}
	// The would-run lines are the commands with their environment, ready to paste.
	env := "DEBIAN_FRONTEND=noninteractive "
	want := []string{"package lists: run: " + env + update + "; package lists are from 30h0m0s ago", "packages: run: " + env + install,
		"package mosquitto: create: candidate " + version, "package mosquitto-clients: create: candidate " + version}
	var got []string
	for _, c := range changes {
		got = append(got, c.What+": "+string(c.Action)+": "+c.Detail)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
}

// Under --root the root's own dpkg database is read, and nothing is installed.
func TestEnsureUnderRoot(t *testing.T) {
	root := t.TempDir()
	w := newWorld(false, true)
	in := NewInstaller(system.NewReal(root, system.WithRunner(w)))
	_, err := in.Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "chroot "+root+" apt-get install") {
		t.Fatalf("error %v, want one that says how to install under the root", err)
	}
	want := []string{"dpkg-query --admindir=" + root + "/var/lib/dpkg -W -f '${Package}\t${db:Status-Status}\t${Version}\n' mosquitto mosquitto-clients"}
	if d := cmp.Diff(want, w.rec.Lines()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
}

// TestQueryRealDpkg reads a dpkg database with the real dpkg-query: a
// status file as dpkg writes it, under a temporary root.
func TestQueryRealDpkg(t *testing.T) {
	if _, err := os.Stat("/usr/bin/dpkg-query"); err != nil {
		t.Skip("dpkg-query not found: not a Debian system")
	}
	root := t.TempDir()
	db := filepath.Join(root, "var/lib/dpkg")
	os.MkdirAll(filepath.Join(db, "updates"), 0o755)
	status := "Package: mosquitto\nStatus: install ok installed\nVersion: 1:2.1.2-1~bpo12+1\nArchitecture: amd64\n\n" +
		"Package: mosquitto-clients\nStatus: deinstall ok config-files\nVersion: 2.0.11-1.2\nArchitecture: amd64\n\n"
	if err := os.WriteFile(filepath.Join(db, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	sys := system.NewReal(root)
	pkgs, err := Query(context.Background(), sys, "mosquitto", "mosquitto-clients", "libwebsockets-dev")
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{"mosquitto", "installed", "1:2.1.2-1~bpo12+1"}, {"mosquitto-clients", "config-files", ""}, {"libwebsockets-dev", "not-installed", ""}}
	if d := cmp.Diff(want, pkgs); d != "" {
		t.Errorf("packages (-want +got):\n%s", d)
	}
	v, err := BrokerVersion(context.Background(), sys)
	if err != nil || v.Series() != "2.1" || !v.AtLeast(2, 1) {
		t.Errorf("BrokerVersion = %v, %v; want 2.1.2", v, err)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		err  bool
	}{
		{"2.0.11-1.2+deb12u2", Version{2, 0, 11}, false},
		{"1:2.1.2-1~bpo12+1", Version{2, 1, 2}, false},
		{"2.0.21", Version{2, 0, 21}, false},
		{"2.1", Version{2, 1, 0}, false},
		{"", Version{}, true},
		{"2.x.1", Version{}, true},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
	if (Version{2, 0, 11}).AtLeast(2, 1) || !(Version{2, 1, 0}).AtLeast(2, 0) || !(Version{3, 0, 0}).AtLeast(2, 1) {
		t.Error("AtLeast compares wrongly")
	}
}

func TestParsePolicy(t *testing.T) {
	out := "mosquitto:\n  Installed: (none)\n  Candidate: 2.0.11-1.2+deb12u2\n  Version table:\n     2.0.11-1.2+deb12u2 500\n" +
		"mosquitto-clients:\n  Installed: (none)\n  Candidate: (none)\n"
	got := parsePolicy([]byte(out))
	if d := cmp.Diff(map[string]string{"mosquitto": "2.0.11-1.2+deb12u2"}, got); d != "" {
		t.Errorf("candidates (-want +got):\n%s", d)
	}
}

// TestProbeLocks takes a real fcntl lock on a lock file under a temporary
// root, the way dpkg does, and checks the probe sees it, and sees it gone.
func TestProbeLocks(t *testing.T) {
	root := t.TempDir()
	sys := system.NewReal(root)
	p := sys.HostPath("/var/lib/dpkg/lock-frontend")
	os.MkdirAll(filepath.Dir(p), 0o755)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, held := ProbeLocks(sys); held {
		t.Fatal("an unlocked file is reported held")
	}
	// An open-file-description lock conflicts with F_GETLK from this same
	// process (a classic POSIX lock would not), so one process can test it.
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	h, held := ProbeLocks(sys)
	if !held || h.Path != "/var/lib/dpkg/lock-frontend" {
		t.Fatalf("probe = %+v, %v; want the frontend lock held", h, held)
	}
	lk.Type = unix.F_UNLCK
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if _, held := ProbeLocks(sys); held {
		t.Fatal("a released lock is reported held")
	}
}
