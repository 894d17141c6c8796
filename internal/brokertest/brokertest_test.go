package brokertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPasswordFileFromRealTool proves the harness itself: a user made by the
// real mosquitto_passwd logs in, a wrong password and no password are refused.
func TestPasswordFileFromRealTool(t *testing.T) {
	Require(t)
	dir := Dir(t)
	pw := filepath.Join(dir, "passwd")
	bin, err := lookPath("mosquitto_passwd")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-b", pw, "alice", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	if os.Geteuid() == 0 {
		// The broker reads the file after dropping to the mosquitto user.
		os.Chmod(pw, 0o644)
	}
	port := FreePort(t)
	b := Start(t, dir, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n", port, pw), port)
	good := Client{Port: port, User: "alice", Password: "s3cret"}
	delivered, err := Roundtrip(good, good, "t/1", "hello")
	if err != nil || !delivered {
		t.Fatalf("good login: delivered=%v err=%v\n%s", delivered, err, b.ReadLog())
	}
	if err := (Client{Port: port, User: "alice", Password: "wrong"}).Publish("t/1", "x"); err == nil || !strings.Contains(err.Error(), "not authorised") {
		t.Fatalf("wrong password: got %v, want not authorised", err)
	}
	if err := (Client{Port: port}).Publish("t/1", "x"); err == nil {
		t.Fatal("anonymous publish was accepted")
	}
}
