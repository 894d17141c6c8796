package system

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// text writes s as a streamed content, line by line as an edit writes it.
func text(s string) (int64, func(io.Writer) error) {
	return int64(len(s)), func(w io.Writer) error {
		for _, line := range strings.SplitAfter(s, "\n") {
			if _, err := io.WriteString(w, line); err != nil {
				return err
			}
		}
		return nil
	}
}

// calls counts how often a content is asked for.
func calls(n *int, content func(io.Writer) error) func(io.Writer) error {
	return func(w io.Writer) error { *n++; return content(w) }
}

func writeFrom(t *testing.T, s System, p, content string, mode fs.FileMode) (Action, int) {
	t.Helper()
	n := 0
	size, c := text(content)
	a, err := s.WriteFrom(p, size, calls(&n, c), Attr{Mode: mode})
	if err != nil {
		t.Fatalf("WriteFrom %q: %v", content, err)
	}
	return a, n
}

// WriteFrom decides as WriteFile does (create, noop, update on bytes or on
// mode), compares only a file of the same size, and writes atomically with
// the mode set before the file has its name.
func TestWriteFromWritesOnlyWhatDiffers(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	host := filepath.Join(root, "secret")
	big := strings.Repeat("user:$7$101$salt$key\n", 5000) // several buffers

	if a, n := writeFrom(t, s, "/secret", big, 0o600); a != Create || n != 1 {
		t.Fatalf("first write: %v after %d calls, want create after 1", a, n)
	}
	if got, _ := os.ReadFile(host); string(got) != big {
		t.Fatal("the file does not hold what was streamed")
	}
	if fi, _ := os.Stat(host); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	// Same bytes: compared (one call), nothing written.
	ino := inode(t, host)
	if a, n := writeFrom(t, s, "/secret", big, 0o600); a != Noop || n != 1 {
		t.Fatalf("same content: %v after %d calls, want noop after 1", a, n)
	}
	if inode(t, host) != ino {
		t.Fatal("a noop replaced the file")
	}
	// Same size, one byte differs: compared, then written.
	changed := big[:len(big)-2] + "Y\n"
	if a, n := writeFrom(t, s, "/secret", changed, 0o600); a != Update || n != 2 {
		t.Fatalf("one byte changed: %v after %d calls, want update after 2", a, n)
	}
	// Another size: written without a comparison.
	longer := changed + "new:$7$101$s$k\n"
	if a, n := writeFrom(t, s, "/secret", longer, 0o600); a != Update || n != 1 {
		t.Fatalf("longer: %v after %d calls, want update after 1", a, n)
	}
	// Same bytes, another mode: an update.
	if a, _ := writeFrom(t, s, "/secret", longer, 0o640); a != Update {
		t.Fatalf("mode change: %v", a)
	}
	if fi, _ := os.Stat(host); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
	}
	if got, _ := os.ReadFile(host); string(got) != longer {
		t.Fatal("content lost in a mode change")
	}
}

func inode(t *testing.T, host string) uint64 {
	t.Helper()
	st, err := os.Stat(host)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// A content that writes another size than it said, or fails, leaves the
// file as it was and no temp file behind.
func TestWriteFromRefusesAContentOfAnotherSize(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	host := filepath.Join(root, "f")
	os.WriteFile(host, []byte("old\n"), 0o600)
	_, c := text("new content\n")
	if _, err := s.WriteFrom("/f", 5, c, Attr{Mode: 0o600}); err == nil {
		t.Fatal("a content of 12 bytes said to be 5 was written")
	}
	boom := errors.New("boom")
	if _, err := s.WriteFrom("/f", 3, func(io.Writer) error { return boom }, Attr{Mode: 0o600}); !errors.Is(err, boom) {
		t.Fatalf("a failing content: %v", err)
	}
	if got, _ := os.ReadFile(host); string(got) != "old\n" {
		t.Fatalf("file holds %q", got)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

// Open and WriteFrom refuse a symlink at the path, as every access does.
func TestStreamedAccessRefusesSymlinks(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	os.WriteFile(filepath.Join(root, "target"), []byte("x\n"), 0o600)
	os.Symlink("target", filepath.Join(root, "link"))
	var le *LinkError
	if _, err := s.Open("/link"); !errors.As(err, &le) {
		t.Fatalf("Open through a symlink: %v", err)
	}
	size, c := text("y\n")
	if _, err := s.WriteFrom("/link", size, c, Attr{Mode: 0o600}); !errors.As(err, &le) {
		t.Fatalf("WriteFrom through a symlink: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "target")); string(got) != "x\n" {
		t.Fatal("the link's target was written")
	}
	big := filepath.Join(root, "big")
	os.WriteFile(big, make([]byte, MaxManaged+1), 0o600)
	if _, err := s.Open("/big"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Open of a file over the cap: %v", err)
	}
}

// The file before a streamed write is kept open, not in memory: a rollback
// puts it back and a diff reads both sides, even after the path was
// replaced again.
func TestStreamedWriteRollsBackAndDiffs(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	host := filepath.Join(root, "passwd")
	os.WriteFile(host, []byte("a:1\nb:2\n"), 0o600)
	src, err := s.Open("/passwd")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, src.Size())
	if _, err := src.ReadAt(buf, 0); err != nil || string(buf) != "a:1\nb:2\n" {
		t.Fatalf("read %q %v", buf, err)
	}
	writeFrom(t, s, "/passwd", "a:1\nb:2\nc:3\n", 0o600)
	// Open after the write reads the new file.
	now, err := s.Open("/passwd")
	if err != nil || now.Size() != 12 {
		t.Fatalf("open after write: %v size %d", err, now.Size())
	}
	changes := s.Changes()
	if len(changes) != 1 || changes[0].Before == nil {
		t.Fatalf("changes %+v", changes)
	}
	// Someone replaces the file again: the change's sides don't move.
	os.Remove(host)
	os.WriteFile(host, []byte("z:9\n"), 0o644)
	before, err := changes[0].Before.Content()
	if err != nil || string(before) != "a:1\nb:2\n" {
		t.Fatalf("before %q %v", before, err)
	}
	after, err := changes[0].Content()
	if err != nil || string(after) != "a:1\nb:2\nc:3\n" {
		t.Fatalf("after %q %v", after, err)
	}
	if err := Restore(s, changes); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(host); string(got) != "a:1\nb:2\n" {
		t.Fatalf("restored %q", got)
	}
	if fi, _ := os.Stat(host); fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored with mode %v", fi.Mode().Perm())
	}
}

// A dry run records a streamed write and later reads see it; the host is
// untouched.
func TestDryRunStreamedWrite(t *testing.T) {
	root := t.TempDir()
	d := NewDryRun(NewReal(root))
	host := filepath.Join(root, "f")
	os.WriteFile(host, []byte("old\n"), 0o600)
	if a, _ := writeFrom(t, d, "/f", "old\n", 0o600); a != Noop {
		t.Fatalf("same content in a dry run: %v", a)
	}
	if a, _ := writeFrom(t, d, "/f", "new\nlines\n", 0o600); a != Update {
		t.Fatalf("dry run: %v", a)
	}
	src, err := d.Open("/f")
	if err != nil || src.Size() != 10 {
		t.Fatalf("dry-run open: %v", err)
	}
	if got, _ := os.ReadFile(host); string(got) != "old\n" {
		t.Fatalf("a dry run wrote %q", got)
	}
	if after, _ := d.Changes()[0].Content(); string(after) != "new\nlines\n" {
		t.Fatalf("recorded %q", after)
	}
}

// The ranges of an opened file that a content copies as they are (an
// io.SectionReader of the Source) go from file to file in the kernel, between
// bytes the content writes itself; a source that is shorter than the range
// (truncated in place since it was opened) fails the write, which leaves
// nothing behind.
func TestWriteFromCopiesRangesOfTheSource(t *testing.T) {
	root := t.TempDir()
	s := NewReal(root)
	host := filepath.Join(root, "f")
	old := strings.Repeat("0123456789abcdef", 5000) // 80,000 bytes: several buffers
	os.WriteFile(host, []byte(old), 0o600)
	src, err := s.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	k := src.(*keptFile)
	want := old[:100] + "NEW" + old[200:70000] + "END"
	content := func(w io.Writer) error {
		if _, err := io.Copy(w, io.NewSectionReader(src, 0, 100)); err != nil {
			return err
		}
		io.WriteString(w, "NEW")
		if _, err := io.Copy(w, io.NewSectionReader(src, 200, 70000-200)); err != nil {
			return err
		}
		_, err := io.WriteString(w, "END")
		return err
	}
	if _, err := s.WriteFrom("/f", int64(len(want)), content, Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(host); string(got) != want {
		t.Fatalf("file holds %d bytes, want %d (first difference at %d)", len(got), len(want), firstDifference(string(got), want))
	}
	// The kernel copy reads the source through its offset, which only the
	// copy moves: it stands at the end of the last range.
	if pos, _ := k.f.Seek(0, io.SeekCurrent); pos != 70000 {
		t.Fatalf("the source's offset is %d: the ranges were not copied from file to file", pos)
	}

	// Truncated in place after it was opened: the copy comes short.
	src, err = s.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(host)
	if err := os.Truncate(host, 1000); err != nil {
		t.Fatal(err)
	}
	short := func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(src, 0, int64(len(before))))
		return err
	}
	if _, err := s.WriteFrom("/f", int64(len(before)), short, Attr{Mode: 0o600}); err == nil || !strings.Contains(err.Error(), "1000 of") {
		t.Fatalf("a source shorter than its range was copied: %v", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func firstDifference(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
