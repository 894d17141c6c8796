package plan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// noDeprecation fails t when the broker b (mosquitto m) says something it
// read is deprecated: on its stderr (2.1 says so while it reads its
// configuration, before it opens its log file) or in its log (on a
// reload).
func noDeprecation(t *testing.T, m brokertest.Mosquitto, b *brokertest.Broker) {
	t.Helper()
	for _, line := range strings.Split(b.Output()+"\n"+b.ReadLog(), "\n") {
		if strings.Contains(strings.ToLower(line), "deprecat") || strings.Contains(line, "Please replace") {
			t.Errorf("mosquitto %s: %s", m, line)
		}
	}
}

// brokerRoot is a target root (newRoot) with broker m installed as dpkg
// says: m's dpkg status file (so apply reads the version with dpkg-query,
// as on the machine itself) and m's password-file plugin, and no
// state.json.
func brokerRoot(t *testing.T, m brokertest.Mosquitto) string {
	t.Helper()
	root := newRoot(t)
	status, err := os.ReadFile(m.File("/var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), status, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := pluginDir(realSys(m.File("/"))); dir != "" {
		so, err := os.ReadFile(m.File(dir + "/mosquitto_password_file.so"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, "mosquitto_password_file.so"), so, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := state.Load(realSys(root)); err != nil || st != nil {
		t.Fatalf("%s: a state file already (%v)", layout.StateDir, err)
	}
	return root
}

// dpkgRunner runs dpkg-query for real (it only reads the target's dpkg
// database) and records every other command, as realSys's runner does.
type dpkgRunner struct{ system.Recorder }

func (r *dpkgRunner) Run(ctx context.Context, cmd system.Cmd) (system.Output, error) {
	if cmd.Name == "dpkg-query" && cmd.ReadOnly {
		return system.ExecRunner{}.Run(ctx, cmd)
	}
	return r.Recorder.Run(ctx, cmd)
}

// dpkgSys is realSys whose dpkg-query is real: apply reads the installed
// broker's version from the root's dpkg database (brokerRoot).
func dpkgSys(root string) *system.Real {
	return system.NewReal(root, system.WithRunner(&dpkgRunner{}))
}
