package system

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Read once: a command reads a managed file (to parse it, to edit it),
// then writes it back through WriteFile, which must compare the new bytes
// with the old ones and keep the old ones for a rollback. Reading the file
// a second time for that doubled the work and the memory of `user add` on a
// large password file (issue 12 §5). Real keeps each file it read with what
// identifies that version of it, and WriteFile and Remove use the bytes
// kept while the file on disk is still that version.

// fileID tells one version of a file from another: the same inode, size,
// and modification and change times. Every write moves mtime and ctime, and
// chmod and chown move ctime; mosqprov's own writes replace the inode.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func idOf(st *unix.Stat_t) fileID {
	return fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// readCopy is a file's bytes as read and the version they are of.
type readCopy struct {
	id   fileID
	data []byte
}

var errTooLarge = errors.New("file too large")

// readAll reads f whole, at most MaxManaged bytes, in one buffer of the
// size fstat gives (io.ReadAll would grow its buffer by doubling, touching
// about three times the file's size in memory). id is the file's version,
// or zero when the version can't tell a later change: the file changed
// while it was read, or its change time is not older than the read. The
// kernel stamps changes with its coarse clock, so a file changed in the
// same tick as the read could change again in that tick and keep its
// times (git's "racy clean" problem); changed a tick before the read, any
// later change moves ctime.
func readAll(f *os.File) (data []byte, id fileID, err error) {
	var before, after unix.Stat_t
	start := coarseNow()
	if err := unix.Fstat(int(f.Fd()), &before); err != nil {
		return nil, fileID{}, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	size := before.Size
	if size > MaxManaged {
		return nil, fileID{}, errTooLarge
	}
	// One byte more than the size, so a file that grew meanwhile reads on.
	buf := make([]byte, 0, size+1)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxManaged {
				return nil, fileID{}, errTooLarge
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fileID{}, err
		}
	}
	if len(buf) > MaxManaged {
		return nil, fileID{}, errTooLarge
	}
	// Full capacity: a caller's append can't write into bytes kept here.
	buf = buf[:len(buf):len(buf)]
	if err := unix.Fstat(int(f.Fd()), &after); err == nil && idOf(&before) == idOf(&after) && int64(len(buf)) == size && older(after.Ctim, start) {
		id = idOf(&after)
	}
	return buf, id, nil
}

// remember keeps data as what the file at host held in version id.
func (s *Real) remember(host string, id fileID, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reads == nil {
		s.reads = map[string]readCopy{}
	}
	s.reads[host] = readCopy{id: id, data: data}
}

// readBefore is the bytes of the file at host if it was read and is still
// the version st describes.
func (s *Real) readBefore(host string, st *unix.Stat_t) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.reads[host]
	if !ok || c.id != idOf(st) {
		return nil, false
	}
	return c.data, true
}

// forget drops what was kept of the file at host: it is being replaced.
func (s *Real) forget(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reads, host)
}

// older reports whether a is before b.
func older(a, b unix.Timespec) bool {
	return a.Sec < b.Sec || a.Sec == b.Sec && a.Nsec < b.Nsec
}

// coarseNow is the kernel's coarse clock, the one it stamps files with
// (tests replace it).
var coarseNow = func() unix.Timespec {
	var t unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &t)
	return t
}
