package system

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// WriteFile compares with the bytes ReadFile read, without reading the
// file again, as long as the file is still that version; a file changed on
// disk since (in place: same inode, same size) is compared as it is now.
func TestWriteFileUsesTheReadOnlyWhileTheFileIsThatVersion(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	host := filepath.Join(root, "f")
	if err := os.WriteFile(host, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A tick of the kernel's coarse clock older than the read, so it is kept.
	time.Sleep(30 * time.Millisecond)
	data, err := s.ReadFile("/f")
	if err != nil || string(data) != "one\n" {
		t.Fatalf("read %q %v", data, err)
	}
	if _, kept := s.reads[host]; !kept {
		t.Fatal("the read was not kept")
	}
	// The kept bytes answer while the file is unchanged: with the file
	// gone from under them (a test-only swap of the kept copy), WriteFile
	// still sees "one".
	s.reads[host] = readCopy{id: s.reads[host].id, data: []byte("kept\n")}
	if a, err := s.WriteFile("/f", []byte("kept\n"), Attr{Mode: 0o644}); err != nil || a != Noop {
		t.Fatalf("an unchanged file was read again: %v %v", a, err)
	}
	s.reads[host] = readCopy{id: s.reads[host].id, data: data}

	// Changed in place, same size: the kept bytes no longer answer.
	f, err := os.OpenFile(host, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("two\n")
	f.Close()
	if a, err := s.WriteFile("/f", []byte("one\n"), Attr{Mode: 0o644}); err != nil || a != Update {
		t.Fatalf("a file changed on disk since the read was compared with the read: %v %v", a, err)
	}
	if got, _ := os.ReadFile(host); string(got) != "one\n" {
		t.Fatalf("file holds %q", got)
	}
	// ReadFile too reads the file as it is, not what was kept.
	f, _ = os.OpenFile(host, os.O_WRONLY, 0)
	f.WriteString("six\n")
	f.Close()
	if data, err := s.ReadFile("/f"); err != nil || string(data) != "six\n" {
		t.Fatalf("read %q %v, want the file's new bytes", data, err)
	}
}

// A file changed in the same tick of the coarse clock as the read could
// change again in that tick with the same times: such a read is not kept;
// one changed a tick before is.
func TestReadOfAFileChangedInTheSameTickIsNotKept(t *testing.T) {
	root := t.TempDir()
	host := filepath.Join(root, "f")
	os.WriteFile(host, []byte("one\n"), 0o644)
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		t.Fatal(err)
	}
	defer func(now func() unix.Timespec) { coarseNow = now }(coarseNow)
	for _, tt := range []struct {
		now  unix.Timespec
		kept bool
	}{
		{st.Ctim, false},
		{unix.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec + 1}, true},
	} {
		coarseNow = func() unix.Timespec { return tt.now }
		s := NewReal(root)
		if _, err := s.ReadFile("/f"); err != nil {
			t.Fatal(err)
		}
		if _, kept := s.reads[host]; kept != tt.kept {
			t.Errorf("read at %v of a file changed at %v: kept %v, want %v", tt.now, st.Ctim, kept, tt.kept)
		}
	}
}
