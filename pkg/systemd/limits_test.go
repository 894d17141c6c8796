package systemd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func TestNOFILEFor(t *testing.T) {
	for _, c := range []struct {
		conns []int
		want  int
	}{
		{nil, 0},
		{[]int{500, 400}, 0},        // 964 with the reserve: systemd's 1024 is enough
		{[]int{960}, 0},             // exactly 1024
		{[]int{961}, 1025},          // one more
		{[]int{2000, 0, 100}, 2164}, // unlimited listeners add nothing
		{[]int{1000000}, 1000064},
	} {
		if got := NOFILEFor(c.conns); got != c.want {
			t.Errorf("NOFILEFor(%v) = %d, want %d", c.conns, got, c.want)
		}
	}
}

// EnsureLimits writes the drop-in once, changes nothing the second time,
// removes its own file when no longer needed, and leaves someone else's.
func TestEnsureLimits(t *testing.T) {
	ctx := context.Background()
	rec := &system.Recorder{}
	sys := system.NewReal(t.TempDir(), system.WithRunner(rec))
	res, err := EnsureLimits(ctx, sys, 2064, true)
	if err != nil || res.Need != system.NeedRestart || len(res.Changes) != 1 || res.Changes[0].Action != system.Create {
		t.Fatalf("first: %+v %v", res, err)
	}
	data, _ := os.ReadFile(sys.HostPath(layout.LimitsDropIn))
	if !strings.Contains(string(data), "\n[Service]\nLimitNOFILE=2064\n") {
		t.Fatalf("drop-in:\n%s", data)
	}
	if res, err := EnsureLimits(ctx, sys, 2064, true); err != nil || res.Need != system.NeedNothing || res.Changes[0].Changed {
		t.Fatalf("second: %+v %v", res, err)
	}
	if res, err := EnsureLimits(ctx, sys, 0, true); err != nil || res.Need != system.NeedRestart || res.Changes[0].Action != system.Delete {
		t.Fatalf("remove: %+v %v", res, err)
	}
	if _, err := os.Stat(sys.HostPath(layout.LimitsDropIn)); err == nil {
		t.Fatal("still there")
	}
	if res, err := EnsureLimits(ctx, sys, 0, true); err != nil || len(res.Changes) != 0 {
		t.Fatalf("nothing to do: %+v %v", res, err)
	}
	os.WriteFile(sys.HostPath(layout.LimitsDropIn), []byte("[Service]\nLimitNOFILE=9999\n"), 0o644)
	if res, err := EnsureLimits(ctx, sys, 0, true); err != nil || len(res.Changes) != 0 || len(res.Warnings) != 1 {
		t.Fatalf("someone else's file: %+v %v", res, err)
	}
	// Under a --root no daemon-reload runs (the real one is in
	// pkg/plan's TestOpenFileLimitInRealSystemd).
	if len(rec.Calls) != 0 {
		t.Fatalf("commands under --root: %+v", rec.Calls)
	}
}

// On the host (root "/", systemd running), every change of the drop-in is
// followed by daemon-reload and asks for a restart: max_connections raised,
// lowered (a smaller limit), lowered under systemd's default or removed (the
// drop-in goes); a dry run says it would reload and runs nothing; without
// systemd nothing runs and the change says so.
func TestEnsureLimitsDaemonReload(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "mosquitto.service.d", "mosqprov-limits.conf")
	rec := &system.Recorder{}
	sys := system.NewReal("/", system.WithRunner(rec))
	steps := []struct {
		name   string
		conns  []int
		action system.Action
		detail string
		reload bool
	}{
		{"raised", []int{2000}, system.Create, "LimitNOFILE=2064 for the listeners' max_connections; systemctl daemon-reload done", true},
		{"again", []int{2000}, system.Noop, "", false},
		{"lowered", []int{1500}, system.Update, "LimitNOFILE=1564 for the listeners' max_connections; systemctl daemon-reload done", true},
		{"under the default", []int{900}, system.Delete, "max_connections no longer need it; systemctl daemon-reload done", true},
		{"raised again", []int{1500}, system.Create, "", true},
		{"removed", nil, system.Delete, "max_connections no longer need it; systemctl daemon-reload done", true},
		{"gone", nil, "", "", false},
	}
	for _, s := range steps {
		rec.Calls = nil
		res, err := ensureLimitsAt(ctx, sys, p, NOFILEFor(s.conns), true)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var got system.Change
		if len(res.Changes) > 0 {
			got = res.Changes[0]
		}
		if got.Action != s.action || s.detail != "" && got.Detail != s.detail {
			t.Errorf("%s: %+v, want %s (%s)", s.name, got, s.action, s.detail)
		}
		if reloaded := len(rec.Calls) == 1 && rec.Calls[0].String() == "systemctl daemon-reload"; reloaded != s.reload || len(rec.Calls) > 1 {
			t.Errorf("%s: commands %v, want daemon-reload %v", s.name, rec.Calls, s.reload)
		}
		if (res.Need == system.NeedRestart) != s.action.Changed() {
			t.Errorf("%s: need %s", s.name, res.Need)
		}
	}

	// plan: says what it would do and does nothing.
	rec.Calls = nil
	dry := system.NewDryRun(sys)
	res, err := ensureLimitsAt(ctx, dry, p, 2064, true)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Action != system.Create ||
		res.Changes[0].Detail != "LimitNOFILE=2064 for the listeners' max_connections; then systemctl daemon-reload" || res.Need != system.NeedRestart {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) || len(rec.Calls) != 0 {
		t.Fatalf("the dry run wrote or ran: %v %v", err, rec.Calls)
	}
	// No systemd: the file, and no daemon to reload.
	res, err = ensureLimitsAt(ctx, sys, p, 2064, false)
	if err != nil || !strings.HasSuffix(res.Changes[0].Detail, "; no systemd here to reload") || len(rec.Calls) != 0 {
		t.Fatalf("without systemd: %+v %v %v", res, err, rec.Calls)
	}
}
