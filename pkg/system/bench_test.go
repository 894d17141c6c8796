package system

import (
	"fmt"
	"testing"
)

// BenchmarkFileAccess measures what confinement costs per call: each read,
// stat and unchanged write opens the file's folder (through os.Root under a
// root other than "/") before reaching the file without following links.
func BenchmarkFileAccess(b *testing.B) {
	for _, rooted := range []bool{true, false} {
		dir := b.TempDir()
		s, p := NewReal(dir), "/etc/mosquitto/passwd"
		if !rooted {
			s, p = NewReal("/"), dir+"/etc/mosquitto/passwd"
		}
		s.EnsureDir(p[:len(p)-len("/passwd")], Attr{Mode: 0o755})
		data := []byte("alice:$7$101$salt$hash\n")
		if _, err := s.WriteFile(p, data, Attr{Mode: 0o600}); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("root=%v", rooted)
		b.Run(name+"/read", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.ReadFile(p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/stat", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Stat(p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/write-unchanged", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.WriteFile(p, data, Attr{Mode: 0o600}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
