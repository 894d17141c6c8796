package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// The open-file drop-in follows broker.yaml's max_connections through
// plan and apply: plan shows it and writes nothing, apply writes it and asks
// for a restart, a second apply changes nothing, lowering max_connections
// lowers the limit, and lowering it under systemd's default or removing it
// removes the drop-in. (daemon-reload on the host: pkg/systemd's
// TestEnsureLimitsDaemonReload; in a real systemd:
// TestOpenFileLimitInRealSystemd.)
func TestLimitsFollowMaxConnections(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	load := func(maxConn string) *spec.Spec {
		t.Helper()
		s, err := spec.Parse("broker.yaml", []byte(fmt.Sprintf(`listeners:
  - {type: mqtt, port: 1883, bind: 127.0.0.1%s}
allow_anonymous: true
package: {install: false}
service: {enable: false}
`, maxConn)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	svc := systemd.New(realSys(root))
	svc.Booted = func() bool { return true }
	o := Options{Service: svc}
	limits := func(r *Result) *system.Change {
		for _, st := range r.Steps {
			if st.Name == StepLimits {
				return &st.Changes[0]
			}
		}
		return nil
	}
	dropIn := filepath.Join(root, layout.LimitsDropIn)

	res, err := Converge(ctx, system.NewDryRun(realSys(root)), load(", max_connections: 2000"), o)
	if err != nil {
		t.Fatal(err)
	}
	if c := limits(res); c == nil || c.Action != system.Create || c.Detail != "LimitNOFILE=2064 for the listeners' max_connections; no systemd here to reload" || res.Need != system.NeedRestart {
		t.Fatalf("plan: %+v need %s", c, res.Need)
	}
	if _, err := os.Stat(dropIn); !os.IsNotExist(err) {
		t.Fatalf("plan wrote the drop-in: %v", err)
	}
	for _, st := range []struct {
		name, maxConn string
		action        system.Action
		limit         string // the drop-in's LimitNOFILE ("" none)
	}{
		{"apply", ", max_connections: 2000", system.Create, "2064"},
		{"second apply", ", max_connections: 2000", system.Noop, "2064"},
		{"lowered", ", max_connections: 1500", system.Update, "1564"},
		{"under the default", ", max_connections: 500", system.Delete, ""},
		{"raised again", ", max_connections: 2000", system.Create, "2064"},
		{"removed", "", system.Delete, ""},
		{"still removed", "", "", ""},
	} {
		res, err := Converge(ctx, realSys(root), load(st.maxConn), o)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		c := limits(res)
		switch {
		case st.action == "" && c != nil:
			t.Errorf("%s: %+v, want no open-file step", st.name, c)
		case st.action != "" && (c == nil || c.Action != st.action):
			t.Errorf("%s: %+v, want %s", st.name, c, st.action)
		case st.action.Changed() && res.Need != system.NeedRestart:
			t.Errorf("%s: need %s, want restart", st.name, res.Need)
		}
		data, err := os.ReadFile(dropIn)
		if st.limit == "" && !os.IsNotExist(err) || st.limit != "" && string(data) != string(systemd.LimitsFile(atoi(st.limit))) {
			t.Errorf("%s: drop-in %q %v, want LimitNOFILE %q", st.name, data, err, st.limit)
		}
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}
