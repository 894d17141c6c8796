package systemd

import (
	"context"
	"os"
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
