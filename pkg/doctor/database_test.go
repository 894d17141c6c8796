package doctor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/internal/brokertest"
)

// DatabaseProblem agrees with the real broker: on a database the broker
// itself wrote it finds nothing, and every damage it names is one the
// broker refuses to start with, while an empty file (which the broker
// accepts) passes. Against each broker of brokertest.Versions (2.0.11,
// 2.0.21, 2.1.2).
func TestDatabaseProblemMatchesTheBroker(t *testing.T) {
	brokertest.Require(t)
	brokertest.Each(t, testDatabaseProblem)
}

func testDatabaseProblem(t *testing.T, m brokertest.Mosquitto) {
	dir := brokertest.Dir(t)
	os.Chmod(dir, 0o777) // the broker writes its database as mosquitto
	port := brokertest.FreePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n", port, dir)
	b := m.Start(t, dir, conf, port)
	c := brokertest.Client{Port: port, Extra: []string{"-r"}}
	for i := 0; i < 20; i++ {
		if err := c.Publish(fmt.Sprintf("home/sensor/%d", i), strings.Repeat("x", i*10+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "mosquitto.db")
	good, err := os.ReadFile(db)
	if err != nil {
		t.Fatalf("the broker wrote no database: %v", err)
	}
	if p := DatabaseProblem(good); p != "" {
		t.Fatalf("mosquitto %s: the broker's own database: %s", m, p)
	}

	starts := func(data []byte) (bool, string) {
		t.Helper()
		if err := os.WriteFile(db, data, 0o600); err != nil {
			t.Fatal(err)
		}
		uid, gid := brokerIDs(t)
		os.Chown(db, uid, gid)
		b, err := m.StartErr(dir, conf, port)
		if err != nil {
			return false, err.Error()
		}
		b.Stop()
		return true, ""
	}
	if ok, log := starts(nil); !ok || DatabaseProblem(nil) != "" {
		t.Fatalf("mosquitto %s: an empty database: the broker starts=%v (%s), problem %q", m, ok, log, DatabaseProblem(nil))
	}
	for name, data := range map[string][]byte{
		"zero-filled":    make([]byte, len(good)),
		"cut in a chunk": good[:len(good)-5],
		"cut in header":  good[:10],
		"other header":   append([]byte("SQLite format 3\x00"), good[16:]...),
	} {
		problem := DatabaseProblem(data)
		if problem == "" {
			t.Errorf("%s: no problem found", name)
		}
		if ok, _ := starts(data); ok {
			t.Errorf("mosquitto %s: %s: the real broker starts with it, yet doctor says %q", m, name, problem)
		}
	}
}

func brokerIDs(t *testing.T) (int, int) {
	t.Helper()
	in := newInstallAt(t, t.TempDir())
	return in.uid, in.gid
}

// doctor reports a zero-filled database at Debian's location as an error
// with the recovery, the broker stopped for the move.
func TestDoctorFindsZeroFilledDatabase(t *testing.T) {
	in := newInstall(t)
	in.write("/var/lib/mosquitto/mosquitto.db", bytes.Repeat([]byte{0}, 4096), 0o600, in.uid, in.gid)
	r := in.run(nil)
	f := wantFinding(t, r, IDDatabaseCorrupt, Error, "zero-filled")
	if f.Severity != Error || f.Subject != "/var/lib/mosquitto/mosquitto.db" || !strings.Contains(f.Problem, "zero-filled") ||
		!strings.HasPrefix(f.Fix, "sudo systemctl stop mosquitto && sudo mv /var/lib/mosquitto/mosquitto.db ") {
		t.Fatalf("finding: %+v", f)
	}
	// The same install with a database the broker can read: no finding.
	in.write("/var/lib/mosquitto/mosquitto.db", nil, 0o600, in.uid, in.gid)
	if f, ok := find(in.run(nil), IDDatabaseCorrupt); ok {
		t.Fatalf("an empty database: %+v", f)
	}
}
