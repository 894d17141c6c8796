package system

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A managed file past MaxManaged (a planted password file of gigabytes) is
// refused with one line naming it, read no further than the cap.
func TestReadFileCapped(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/mosquitto"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(root, "etc/mosquitto/passwd")
	if err := os.WriteFile(big, make([]byte, MaxManaged+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewReal(root).ReadFile("/etc/mosquitto/passwd")
	if err == nil || !strings.Contains(err.Error(), "/etc/mosquitto/passwd is larger than 6 MiB") {
		t.Fatalf("got %v", err)
	}
	if err := os.Truncate(big, MaxManaged); err != nil {
		t.Fatal(err)
	}
	if data, err := NewReal(root).ReadFile("/etc/mosquitto/passwd"); err != nil || len(data) != MaxManaged {
		t.Fatalf("at the cap: %d bytes, %v", len(data), err)
	}
}

// ReadLine stops at the cap however long the line.
func TestReadLineCapped(t *testing.T) {
	line, ok, err := ReadLine("--password-stdin", strings.NewReader("pw\r\nrest"), 10)
	if line != "pw" || !ok || err != nil {
		t.Fatalf("%q %v %v", line, ok, err)
	}
	if _, _, err := ReadLine("--password-stdin", strings.NewReader(strings.Repeat("a", 11)), 10); err == nil || !strings.Contains(err.Error(), "longer than 10 bytes") {
		t.Fatalf("got %v", err)
	}
	if _, ok, err := ReadLine("--password-stdin", strings.NewReader(""), 10); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
}
