package system

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// How a Real reaches a file (issue 11):
//
//   - The folder holding it is opened first. Under a root other than "/" it
//     is opened through an os.Root, so every folder on the way resolves
//     inside the root, symlinks included; a link that leads out (an
//     absolute one, or too many "..") is refused with a *LinkError naming
//     it. On "/" and for the caller's own (relative) paths the kernel
//     resolves the folder as usual: nothing is outside "/".
//   - The file itself is then reached relative to that open folder (openat,
//     fstatat, renameat, unlinkat) and never through a final symlink
//     (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW): a managed file that is a symlink
//     is refused with a *LinkError naming the link and its target.
//
// Only os.Root API from Go 1.24 is used (OpenRoot, Open, Lstat), so the
// module builds with the Go that Debian 13 ships.

// LinkError is a symlink mosqprov refuses to follow: a file it reads or
// writes that is a symlink, or a folder link under --root that leads
// outside it. It is bad input (exit 3): nothing was changed.
type LinkError struct {
	Path   string // the link, as a target-system path
	Host   string // where the link is on this machine (differs under --root)
	Target string // what the link points to
	Root   string // set when the link leads outside this --root
}

func (e *LinkError) Error() string {
	where := e.Path
	if e.Host != "" && e.Host != e.Path {
		where += " (at " + e.Host + ")"
	}
	if e.Root != "" {
		return fmt.Sprintf("%s is a symlink to %s, which leads outside --root %s: under --root only relative links that stay inside it are followed; nothing was changed", where, e.Target, e.Root)
	}
	return fmt.Sprintf("%s is a symlink to %s: mosqprov never reads or writes the files it manages through a symlink (replace the link with the file itself); nothing was changed", where, e.Target)
}

// Unwrap makes a LinkError bad input for errs.IsInput (exit 3).
func (e *LinkError) Unwrap() error { return &errs.InputError{Field: e.Path, Problem: "is a symlink"} }

// openRoot is the os.Root of s.root, opened once. A root that doesn't exist
// yet is not cached: EnsureDir("/") may create it.
func (s *Real) openRoot() (*os.Root, error) {
	s.rootMu.Lock()
	defer s.rootMu.Unlock()
	if s.rootDir != nil {
		return s.rootDir, nil
	}
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	s.rootDir = r
	return r, nil
}

// confined reports whether p is resolved through the os.Root: an absolute
// target path under a root other than "/".
func (s *Real) confined(p string) bool { return s.root != "/" && filepath.IsAbs(p) }

// openDir opens folder p (following links as the root allows).
func (s *Real) openDir(p string) (*os.File, error) {
	p = filepath.Clean(p)
	if !s.confined(p) {
		return os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY, 0)
	}
	r, err := s.openRoot()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: s.HostPath(p), Err: underlying(err)}
	}
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		rel = "."
	}
	f, err := r.Open(rel)
	if err != nil {
		if le := s.escapingLink(r, rel); le != nil {
			return nil, le
		}
		return nil, &fs.PathError{Op: "open", Path: s.HostPath(p), Err: underlying(err)}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: s.HostPath(p), Err: unix.ENOTDIR}
	}
	return f, nil
}

// underlying is err's errno when it has one, so a re-wrapped error reads as
// the os package's own ("open X: no such file or directory").
func underlying(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// escapingLink finds, after the root refused rel, the symlink on the way
// that leads outside the root, so the error can name it.
func (s *Real) escapingLink(r *os.Root, rel string) *LinkError {
	parts := strings.Split(rel, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fi, err := r.Lstat(prefix)
		if err != nil {
			return nil
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if _, err := r.Stat(prefix); err == nil || errors.Is(err, fs.ErrNotExist) {
			continue // this one stays inside
		}
		host := filepath.Join(s.root, prefix)
		target, _ := os.Readlink(host)
		return &LinkError{Path: "/" + prefix, Host: host, Target: target, Root: s.root}
	}
	return nil
}

// openParent opens the folder holding p and returns it with p's last name.
// For the root itself the name is ".".
func (s *Real) openParent(p string) (*os.File, string, error) {
	p = filepath.Clean(p)
	dir, name := filepath.Dir(p), filepath.Base(p)
	if p == "/" || p == "." {
		dir, name = p, "."
	}
	d, err := s.openDir(dir)
	if err != nil {
		return nil, "", err
	}
	return d, name, nil
}

// statAt is fstatat(dir, name) without following a final symlink.
func statAt(dir *os.File, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	return st, err
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func infoFromStat(p string, st *unix.Stat_t) FileInfo {
	return FileInfo{
		Path:    p,
		Mode:    fs.FileMode(st.Mode & 0o777),
		IsDir:   st.Mode&unix.S_IFMT == unix.S_IFDIR,
		Symlink: st.Mode&unix.S_IFMT == unix.S_IFLNK,
		UID:     int(st.Uid),
		GID:     int(st.Gid),
		Size:    st.Size,
		ModTime: time.Unix(st.Mtim.Unix()),
	}
}

// linkAt is the *LinkError for the symlink name in dir.
func (s *Real) linkAt(p string, dir *os.File, name string) *LinkError {
	target := "?"
	buf := make([]byte, 4096)
	if n, err := unix.Readlinkat(int(dir.Fd()), name, buf); err == nil {
		target = string(buf[:n])
	}
	return &LinkError{Path: p, Host: s.HostPath(p), Target: target}
}

// openFileAt opens name in dir for reading, never through a symlink, and
// only a regular file (a FIFO or device planted at a managed path would
// block or never end).
func (s *Real) openFileAt(p string, dir *os.File, name string) (*os.File, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		return err
	})
	if errors.Is(err, unix.ELOOP) {
		if st, serr := statAt(dir, name); serr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, s.linkAt(p, dir, name)
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: s.HostPath(p), Err: err}
	}
	f := os.NewFile(uintptr(fd), s.HostPath(p))
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case fi.IsDir():
		f.Close()
		return nil, &fs.PathError{Op: "read", Path: s.HostPath(p), Err: unix.EISDIR}
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: s.HostPath(p), Err: errors.New("not a regular file")}
	}
	return f, nil
}

// readFile reads p without following a final symlink.
func (s *Real) readFile(p string) ([]byte, error) {
	dir, name, err := s.openParent(p)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if st, err := statAt(dir, name); err == nil {
		if data, ok := s.readBefore(s.HostPath(p), &st); ok {
			return data, nil
		}
		// A file open for streamed reads is read through that descriptor.
		if k := s.kept(s.HostPath(p), &st); k != nil {
			return k.bytes()
		}
	}
	f, err := s.openFileAt(p, dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, id, err := readAll(f)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%s is larger than %s; refusing to read it (docs/reference.md, Limits)", p, Size(MaxManaged))
	}
	if err == nil && id != (fileID{}) {
		s.remember(s.HostPath(p), id, data)
	}
	return data, err
}

// stat is p's lstat, resolved as every other access is.
func (s *Real) stat(p string) (FileInfo, error) {
	if filepath.Clean(p) == "/" && s.root != "/" {
		// The root folder itself is the caller's: it is the --root argument.
		fi, err := os.Stat(s.root)
		if err != nil {
			return FileInfo{}, err
		}
		return infoFrom(p, fi), nil
	}
	dir, name, err := s.openParent(p)
	if err != nil {
		return FileInfo{}, err
	}
	defer dir.Close()
	st, err := statAt(dir, name)
	if err != nil {
		return FileInfo{}, &fs.PathError{Op: "lstat", Path: s.HostPath(p), Err: err}
	}
	return infoFromStat(p, &st), nil
}

// readDir lists folder p, sorted by name as os.ReadDir does.
func (s *Real) readDir(p string) ([]fs.DirEntry, error) {
	d, err := s.openDir(p)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, &fs.PathError{Op: "readdirent", Path: s.HostPath(p), Err: underlying(err)}
	}
	sortEntries(entries)
	return entries, nil
}

// isDir reports whether p is a folder a write could go into (a link to a
// folder inside the root counts, as writing into it follows it).
func (s *Real) isDir(p string) bool { return s.dirError(p) == nil }

// dirError is why folder p can't be written into, or nil.
func (s *Real) dirError(p string) error {
	d, err := s.openDir(p)
	if err != nil {
		return err
	}
	d.Close()
	return nil
}

// OnHost is the System for the caller's own files: --out of cert export and
// cert client, as -f and cert import read theirs. Its absolute paths are
// paths on this machine whatever --root says; it is a dry run when sys is.
// On "/" it is sys itself.
func OnHost(sys System) System {
	switch s := sys.(type) {
	case *Real:
		if s.root == "/" {
			return s
		}
		return s.onHost()
	case *DryRun:
		if s.Root() == "/" {
			return s
		}
		return NewDryRun(s.host.onHost())
	}
	return sys
}

func (s *Real) onHost() *Real {
	return &Real{root: "/", runner: s.runner, clock: s.clock, log: s.log, euid: s.euid}
}

func sortEntries(entries []fs.DirEntry) {
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
}

// WritableByOthers says why folder dir lets a user other than root (and
// other than the one running mosqprov) replace the files in it or plant a
// link at their names, or "" when it doesn't: a secret written there is at
// that user's mercy (issue 11 §2, the password file --file).
func WritableByOthers(sys System, dir string) string {
	fi, err := sys.Stat(dir)
	if err != nil || !fi.IsDir {
		return ""
	}
	me := sys.CurrentAccount()
	switch {
	case fi.UID != 0 && fi.UID != me.UID:
		return fmt.Sprintf("its folder %s belongs to uid %d (mode %04o), who can replace the file or put a link in its place; keep it in a folder only root can write", dir, fi.UID, fi.Mode)
	case fi.Mode&0o002 != 0:
		return fmt.Sprintf("its folder %s is writable by every user (mode %04o), who can replace the file or put a link in its place; keep it in a folder only root can write", dir, fi.Mode)
	case fi.Mode&0o020 != 0 && fi.GID != 0 && fi.GID != me.GID:
		return fmt.Sprintf("its folder %s is writable by group gid %d (mode %04o), whose members can replace the file or put a link in its place; keep it in a folder only root can write", dir, fi.GID, fi.Mode)
	}
	return ""
}

// OpenRead opens p on sys for reading as every read is opened: inside the
// root, never through a final symlink, regular files only. It is for the
// few callers that need the descriptor itself (apt's lock probe asks the
// kernel about the file's fcntl locks). A dry run opens the real file.
func OpenRead(sys System, p string) (*os.File, error) {
	s := sys.real()
	dir, name, err := s.openParent(p)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return s.openFileAt(p, dir, name)
}
