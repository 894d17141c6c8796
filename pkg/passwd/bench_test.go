package passwd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/system"
)

func BenchmarkHash(b *testing.B) {
	for _, tc := range []struct {
		name string
		algo Algo
		it   int
	}{{"pbkdf2-1000", PBKDF2, 1000}, {"pbkdf2-101", PBKDF2, 101}, {"sha512", SHA512, 0}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := New("correct horse battery staple", tc.algo, tc.it); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	h, _ := New("correct horse", PBKDF2, 1000)
	for b.Loop() {
		if !h.Verify("correct horse") {
			b.Fatal("no match")
		}
	}
}

func BenchmarkParse10k(b *testing.B) {
	data := []byte(usersFile(b, 10000))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// usersFile is a password file of n users with cheap (1-iteration) hashes.
func usersFile(b *testing.B, n int) string {
	h, _ := New("x", PBKDF2, 1)
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "user%05d:%s\n", i, h.String())
	}
	return sb.String()
}

// BenchmarkImport: one Converge of 1000 new users (1000 iterations each)
// into an empty file, hashing on every core, written once.
func BenchmarkImport1000(b *testing.B) {
	want := make([]Desired, 1000)
	for i := range want {
		want[i] = Desired{Name: fmt.Sprintf("user%04d", i), Password: fmt.Sprintf("pw-%d", i)}
	}
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		sys := system.NewReal(root)
		b.StartTimer()
		if _, err := Converge(sys, target, want, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddInto10k: one new user into a file that holds 10,000, as
// `user add` does it (101 iterations, mosquitto_passwd 2.0's count, which
// bench/passwd.sh compares with; the other users not listed).
func BenchmarkAddInto10k(b *testing.B) {
	seed := usersFile(b, 10000)
	root := b.TempDir()
	host := filepath.Join(root, target)
	os.MkdirAll(filepath.Dir(host), 0o755)
	for b.Loop() {
		b.StopTimer()
		os.WriteFile(host, []byte(seed), 0o600)
		// A file last changed a tick of the kernel's clock before it is
		// read, as a password file is, so the write compares with that read.
		time.Sleep(11 * time.Millisecond)
		sys := system.NewReal(root)
		b.StartTimer()
		if _, err := Converge(sys, target, []Desired{{Name: "newcomer", Password: "pw"}}, Options{Iterations: 101, SkipUnmanaged: true}); err != nil {
			b.Fatal(err)
		}
	}
}
