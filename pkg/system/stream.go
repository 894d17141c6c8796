package system

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Streamed edits (issue 12 §5): a 10,000-user password file is 1.2 MB, and
// holding it in memory, then its rewrite, cost `user add` twice its size in
// fresh pages, each one a page fault, which made it 2x slower than
// mosquitto_passwd. Open and WriteFrom let an edit walk the file through a
// small buffer as often as it needs, and write the result straight into the
// temp file. The file before and after the write stay open (not in memory)
// for what may still need them: a rollback and a diff.

// Source is a file opened for a streamed read. Its bytes don't change while
// it is open: mosqprov replaces files, it never writes into them.
type Source interface {
	io.ReaderAt
	// Size is the file's length in bytes.
	Size() int64
}

// streamBuffer is the buffer a streamed comparison or write goes through:
// small, since each of its pages is a fresh one to fault in.
const streamBuffer = 16 << 10

// keptFile is an open file a System holds on to: the content of a streamed
// file before and after a write, closed when nothing refers to it any more.
type keptFile struct {
	f    *os.File
	id   fileID
	size int64
}

// keep holds f as the version of its file it has open now; on an error f
// is closed.
func keep(f *os.File) (*keptFile, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	k := &keptFile{f: f, id: idOf(&st), size: st.Size}
	runtime.AddCleanup(k, func(f *os.File) { f.Close() }, f)
	return k, nil
}

func (k *keptFile) ReadAt(p []byte, off int64) (int, error) { return k.f.ReadAt(p, off) }
func (k *keptFile) Size() int64                             { return k.size }

// bytes reads the kept file whole (a diff or a Snapshot's Content).
func (k *keptFile) bytes() ([]byte, error) {
	data := make([]byte, k.size)
	if _, err := k.f.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && k.size == 0) {
		return nil, fmt.Errorf("read %s: %w", k.f.Name(), err)
	}
	return data, nil
}

// bytesSource is a Source over bytes (a dry run's pending write).
type bytesSource struct{ *bytes.Reader }

func (b bytesSource) Size() int64 { return b.Reader.Size() }

// Content is the snapshot's bytes: Data, or the kept file of a streamed write.
func (s *Snapshot) Content() ([]byte, error) {
	if s.kept != nil {
		return s.kept.bytes()
	}
	return s.Data, nil
}

// Content is the file's content after the change: After, or the file a
// streamed write made, read back.
func (c FileChange) Content() ([]byte, error) {
	if c.after != nil {
		return c.after.bytes()
	}
	return c.After, nil
}

// kept is the open file the System holds with the content at host, if it is
// still the file there (st).
func (s *Real) kept(host string, st *unix.Stat_t) *keptFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.streams[host]; k != nil && k.id == idOf(st) {
		return k
	}
	return nil
}

func (s *Real) hold(host string, k *keptFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams == nil {
		s.streams = map[string]*keptFile{}
	}
	s.streams[host] = k
}

// Open opens p for a streamed read, as ReadFile reads it: inside the root,
// never through a final symlink, a regular file of at most MaxManaged bytes.
func (s *Real) Open(p string) (Source, error) {
	dir, name, err := s.openParent(p)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	src, _, _, err := s.current(p, dir, name)
	return src, err
}

// current is what the file name in dir holds now, read once: the
// descriptor kept of this version, the bytes an earlier ReadFile read of
// it, or the file opened now (and kept). Exactly one of kept and data is
// set with src.
func (s *Real) current(p string, dir *os.File, name string) (src Source, kept *keptFile, data []byte, err error) {
	host := s.HostPath(p)
	if st, err := statAt(dir, name); err == nil {
		if k := s.kept(host, &st); k != nil {
			return k, k, nil, nil
		}
		if data, ok := s.readBefore(host, &st); ok {
			return bytesSource{bytes.NewReader(data)}, nil, data, nil
		}
	}
	f, err := s.openFileAt(p, dir, name)
	if err != nil {
		return nil, nil, nil, err
	}
	k, err := keep(f)
	if err != nil {
		return nil, nil, nil, err
	}
	if k.size > MaxManaged {
		return nil, nil, nil, fmt.Errorf("%s is larger than %s; refusing to read it (docs/reference.md, Limits)", p, Size(MaxManaged))
	}
	s.hold(host, k)
	return k, k, nil, nil
}

// errDiffers stops a comparison at the first byte that differs.
var errDiffers = errors.New("content differs")

// comparer is a Writer that checks what is written against old, read
// through buf a window at a time.
type comparer struct {
	old Source
	off int64 // bytes compared so far
	buf []byte
	win []byte // old's bytes from off on, read and not compared yet
}

func (c *comparer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(c.win) == 0 {
			left := c.old.Size() - c.off
			if left <= 0 {
				return 0, errDiffers
			}
			m, err := c.old.ReadAt(c.buf[:min(int64(len(c.buf)), left)], c.off)
			if m == 0 {
				if err == nil || errors.Is(err, io.EOF) {
					err = errDiffers
				}
				return 0, err
			}
			c.win = c.buf[:m]
		}
		chunk := min(len(p), len(c.win))
		if !bytes.Equal(c.win[:chunk], p[:chunk]) {
			return 0, errDiffers
		}
		c.off += int64(chunk)
		c.win = c.win[chunk:]
		p = p[chunk:]
	}
	return n, nil
}

// sameContent reports whether content writes exactly old's bytes.
func sameContent(old Source, content func(io.Writer) error) (bool, error) {
	c := &comparer{old: old, buf: make([]byte, streamBuffer)}
	err := content(c)
	if errors.Is(err, errDiffers) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return c.off == old.Size(), nil
}

// WriteFrom is WriteFile for a file too large to build in memory: content
// writes its size bytes. When the file there has that size too, content is
// called once to compare them with it, and once more to write them when
// they differ, so it must write the same bytes each time. The file is
// written atomically, only when bytes, owner or mode differ, exactly as
// WriteFile writes; content writing other than size bytes is an error and
// leaves the file as it was.
func (s *Real) WriteFrom(p string, size int64, content func(io.Writer) error, attr Attr) (Action, error) {
	uid, gid, err := s.resolveOwner(attr)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	host := s.HostPath(p)
	dir, name, err := s.openParent(p)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", host, err)
	}
	defer dir.Close()
	action := Create
	var before *Snapshot
	st, err := statAt(dir, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("stat %s: %w", host, err)
	default:
		info := infoFromStat(p, &st)
		if info.IsDir {
			return "", fmt.Errorf("write %s: is a folder", host)
		}
		if info.Symlink {
			return "", fmt.Errorf("write %s: %w", p, s.linkAt(p, dir, name))
		}
		// What the file holds now, for the comparison and a rollback.
		old, kept, data, err := s.current(p, dir, name)
		if err != nil {
			return "", fmt.Errorf("write %s: %w", p, err)
		}
		before = &Snapshot{Mode: info.Mode, UID: info.UID, GID: info.GID, Data: data, kept: kept}
		// Another size is another content: no need to compare.
		same := false
		if old.Size() == size {
			if same, err = sameContent(old, content); err != nil {
				return "", fmt.Errorf("write %s: %w", p, err)
			}
		}
		action = Update
		if same && info.Mode == attr.Mode.Perm() && (uid < 0 || uid == info.UID) && (gid < 0 || gid == info.GID) {
			action = Noop
		}
	}
	s.log("file %s: %s (%d bytes, %s)", s.where(p), action, size, describeAttr(attr))
	if action == Noop {
		return Noop, nil
	}
	if err := s.canOwn(attr, uid, gid); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	s.forget(host)
	// The new file stays readable through a descriptor of its own (a diff,
	// a later streamed read), whatever happens at the path afterwards.
	var written *os.File
	fill := func(f *os.File) error {
		w := streamWriter{bufio.NewWriterSize(f, streamBuffer), f}
		if err := content(w); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if st, err := f.Stat(); err != nil || st.Size() != size {
			return fmt.Errorf("content is not the %d bytes it was said to be", size)
		}
		var err error
		written, err = reopen(f)
		return err
	}
	if err := atomicFillAt(dir, name, host, fill, attr.Mode.Perm(), uid, gid); err != nil {
		if written != nil {
			written.Close()
		}
		return "", err
	}
	// Kept after the rename, which moves its change time: the id a later
	// Open compares with.
	// Recorded whatever happens next: the file is replaced, and a rollback
	// must know it.
	after, err := keep(written)
	if err == nil {
		s.hold(host, after)
	}
	s.record(FileChange{Path: p, Action: action, Before: before, after: after})
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	return action, nil
}

// streamWriter is what WriteFrom's content writes to: the temp file behind
// a buffer. A range of a file read through Open that content copies as it
// is (io.Copy of an io.SectionReader of the Source) is copied by the kernel
// (copy_file_range, or a read and write where the file system can't): an
// edit of one line of a large file moves the rest of it without a pass
// through mosqprov's memory.
type streamWriter struct {
	*bufio.Writer
	f *os.File
}

func (w streamWriter) ReadFrom(r io.Reader) (int64, error) {
	sr, ok := r.(*io.SectionReader)
	if !ok {
		return w.Writer.ReadFrom(r)
	}
	outer, off, n := sr.Outer()
	k, ok := outer.(*keptFile)
	if !ok {
		return w.Writer.ReadFrom(r)
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if _, err := k.f.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	copied, err := w.f.ReadFrom(io.LimitReader(k.f, n))
	if err == nil && copied != n {
		err = fmt.Errorf("copy %s: %d of %d bytes: %w", k.f.Name(), copied, n, io.ErrUnexpectedEOF)
	}
	return copied, err
}

// reopen is a second descriptor of the file f has open, only ever read.
func reopen(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: f.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// Open on a dry run sees the recorded writes.
func (d *DryRun) Open(p string) (Source, error) {
	if pf := d.pendingAt(p); pf != nil {
		if pf.deleted || pf.dir {
			return nil, &fs.PathError{Op: "open", Path: d.HostPath(p), Err: fs.ErrNotExist}
		}
		return bytesSource{bytes.NewReader(pf.data)}, nil
	}
	return d.host.Open(p)
}

// WriteFrom on a dry run records the bytes content writes, as WriteFile.
func (d *DryRun) WriteFrom(p string, size int64, content func(io.Writer) error, attr Attr) (Action, error) {
	var buf bytes.Buffer
	if err := content(&buf); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	if int64(buf.Len()) != size {
		return "", fmt.Errorf("write %s: content is not the %d bytes it was said to be", p, size)
	}
	return d.WriteFile(p, buf.Bytes(), attr)
}

// restoreStream puts a streamed snapshot back, copying from its kept file.
func (s *Real) restoreStream(p string, snap *Snapshot) error {
	dir, name, err := s.openParent(p)
	if err != nil {
		return fmt.Errorf("write %s: %w", s.HostPath(p), err)
	}
	defer dir.Close()
	s.forget(s.HostPath(p))
	fill := func(f *os.File) error {
		_, err := io.Copy(f, io.NewSectionReader(snap.kept, 0, snap.kept.size))
		return err
	}
	return atomicFillAt(dir, name, s.HostPath(p), fill, snap.Mode, snap.UID, snap.GID)
}
