package passwd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// nonRoot is a System whose process is an ordinary user.
type nonRoot struct{ *system.Real }

func (nonRoot) CurrentAccount() system.Account {
	return system.Account{Name: "pi", UID: 1000, GID: 1000}
}

// A non-root `user add` refuses before creating any folder: only root can
// give the password file to the broker's user.
func TestNonRootRefusesBeforeAnyFolder(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	accounts := "root:x:0:0::/root:/bin/sh\npi:x:1000:1000::/home/pi:/bin/sh\nmosquitto:x:120:120::/var/lib/mosquitto:/usr/sbin/nologin\n"
	groups := "root:x:0:\npi:x:1000:\nmosquitto:x:120:\n"
	for name, data := range map[string]string{"passwd": accounts, "group": groups} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sys := nonRoot{system.NewReal(root)}
	_, err := Converge(sys, "/etc/mosquitto/passwd", []Desired{{Name: "alice", Password: "s3cret"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "only root can give it to user mosquitto, and this is pi") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/mosquitto")); !os.IsNotExist(err) {
		t.Fatalf("a folder was created: %v", err)
	}
}
