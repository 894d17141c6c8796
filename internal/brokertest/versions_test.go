package brokertest

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVersions proves the harness for each broker of Versions: the broker
// that runs is the version it says (its own log), it reads a configuration
// and a password file from the test's folder (owned by the host's
// mosquitto user, mode 0600, as mosqprov writes it), serves a real client,
// reloads on SIGHUP, and cannot write into its shared tree.
func TestVersions(t *testing.T) {
	Each(t, func(t *testing.T, m Mosquitto) {
		dir := Dir(t)
		pw := filepath.Join(dir, "passwd")
		// alice:s3cret, a PBKDF2-SHA512 line from mosquitto_passwd (test fixture).
		line := "alice:$7$101$/RETahMn8iLZFAWB$lLA65Issc+Tus5dOSfTp2G4KbiEJ6MG7RwIxFv2fRXaDFglSObQ+jFE1mc4FO9AdVz2rZBcErST27q4yVx4rYQ==\n"
		if err := os.WriteFile(pw, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		uid, gid := brokerIDs(t)
		if err := os.Chown(pw, uid, gid); err != nil {
			t.Fatal(err)
		}
		port := FreePort(t)
		conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n", port, pw)
		if m.Tree != "" {
			conf += "persistence true\npersistence_location /\nautosave_interval 1\n"
		}
		b := m.Start(t, dir, conf, port)
		if !strings.Contains(b.ReadLog(), "mosquitto version "+m.Version+" ") {
			t.Fatalf("the broker is not %s:\n%s", m, b.ReadLog())
		}
		good := Client{Port: port, User: "alice", Password: "s3cret"}
		if ok, err := Roundtrip(good, good, "t/1", "hello"); err != nil || !ok {
			t.Fatalf("%s: good login: delivered=%v err=%v\n%s", m, ok, err, b.ReadLog())
		}
		if err := (Client{Port: port, User: "alice", Password: "wrong"}).Publish("t/1", "x"); err == nil {
			t.Fatalf("%s: a wrong password was accepted", m)
		}
		if err := b.Reload(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(b.ReadLog(), "Reloading config"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no reload in the log:\n%s", m, b.ReadLog())
			}
		}
		if err := good.Publish("t/1", "after reload"); err != nil {
			t.Fatalf("%s: after SIGHUP: %v\n%s", m, err, b.ReadLog())
		}
		if m.Tree != "" {
			// persistence_location / is the tree's root, read-only here.
			time.Sleep(1500 * time.Millisecond)
			if _, err := os.Stat(filepath.Join(m.Tree, "mosquitto.db")); err == nil {
				t.Fatalf("%s: the broker wrote into its shared tree", m)
			}
		}
	})
}

// brokerIDs is the host's mosquitto user and group.
func brokerIDs(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup("mosquitto")
	if err != nil {
		t.Fatalf("the host's mosquitto user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}
