package system

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Real reads and writes the host (under its root) and runs commands for real.
type Real struct {
	root    string
	runner  Runner
	clock   func() time.Time
	log     func(format string, args ...any)
	euid    int
	mu      sync.Mutex
	changes []FileChange
	// reads are the files read, by host path, with what they were then:
	// WriteFile compares with them instead of reading the file again.
	reads map[string]readCopy
	// streams are the files open for streamed reads, by host path (stream.go).
	streams map[string]*keptFile
	// accounts are the users and groups found (accounts.go).
	accounts map[string]Account

	rootMu  sync.Mutex
	rootDir *os.Root // s.root, opened on first use (fsops.go)
}

// Option configures a Real.
type Option func(*Real)

// WithRunner replaces the command runner (tests use a recording one).
func WithRunner(r Runner) Option { return func(s *Real) { s.runner = r } }

// WithClock replaces the clock.
func WithClock(now func() time.Time) Option { return func(s *Real) { s.clock = now } }

// NewReal returns a System on the host, with target paths under root. Every
// absolute path resolves inside root, as chroot would see it, or is refused
// (fsops.go); "" means "/" (the CLI refuses an empty --root before this).
func NewReal(root string, opts ...Option) *Real {
	if root == "" {
		root = "/"
	}
	s := &Real{root: filepath.Clean(root), runner: ExecRunner{}, clock: time.Now, log: func(string, ...any) {}, euid: os.Geteuid()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SetLog makes the System describe every write, folder, lock and command
// through logf (--verbose). Secrets never reach it: file contents and
// command environments are not logged.
func (s *Real) SetLog(logf func(format string, args ...any)) {
	if logf != nil {
		s.log = logf
	}
}

func (s *Real) real() *Real { return s }

// where is a target path as a log line shows it: with its host location
// when that differs (under --root).
func (s *Real) where(p string) string {
	if host := s.HostPath(p); host != p {
		return p + " (at " + host + ")"
	}
	return p
}

func (s *Real) Root() string   { return s.root }
func (s *Real) IsDryRun() bool { return false }
func (s *Real) Now() time.Time { return s.clock() }
func (s *Real) Runner() Runner { return s.runner }
func (s *Real) HostPath(p string) string {
	if !filepath.IsAbs(p) || s.root == "/" {
		return p
	}
	return filepath.Join(s.root, p)
}

// ReadFile never follows a final symlink: a link is a *LinkError.
func (s *Real) ReadFile(p string) ([]byte, error) { return s.readFile(p) }

func (s *Real) ReadDir(p string) ([]fs.DirEntry, error) { return s.readDir(p) }

func (s *Real) Stat(p string) (FileInfo, error) { return s.stat(p) }

func infoFrom(p string, fi fs.FileInfo) FileInfo {
	info := FileInfo{
		Path:    p,
		Mode:    fi.Mode().Perm(),
		IsDir:   fi.IsDir(),
		Symlink: fi.Mode()&fs.ModeSymlink != 0,
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		UID:     -1,
		GID:     -1,
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.UID, info.GID = int(st.Uid), int(st.Gid)
	}
	return info
}

// canOwn checks, before anything is written, that this process may give a
// file the owner attr asks for: only root can hand a file to another user,
// and other users only to a group they are in. Without it the write would
// fail half way with a bare "operation not permitted".
func (s *Real) canOwn(attr Attr, uid, gid int) error {
	if s.euid == 0 {
		return nil
	}
	me := s.CurrentAccount().Name
	if uid >= 0 && uid != s.euid {
		return fmt.Errorf("owner %s: only root can give a file to another user, and this is %s; run mosqprov as root (sudo)", attr.User, me)
	}
	if gid >= 0 && gid != os.Getegid() && !inGroups(gid) {
		return fmt.Errorf("group %s: %s is not in it, so only root can give a file to it; run mosqprov as root (sudo)", attr.Group, me)
	}
	return nil
}

func inGroups(gid int) bool {
	groups, _ := os.Getgroups()
	return slices.Contains(groups, gid)
}

// resolveOwner turns attr's names into ids; -1 means "leave as is / default".
func (s *Real) resolveOwner(attr Attr) (uid, gid int, err error) {
	uid, gid = -1, -1
	if attr.User != "" {
		acct, err := s.LookupUser(attr.User)
		if err != nil {
			return 0, 0, err
		}
		uid = acct.UID
	}
	if attr.Group != "" {
		gid, err = s.LookupGroup(attr.Group)
		if err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// plan compares path with the desired state without writing anything. A
// symlink at path is refused, never replaced: replacing it would hand its
// target's content to the file's new owner.
func (s *Real) plan(p string, data []byte, attr Attr, uid, gid int) (Action, *Snapshot, error) {
	host := s.HostPath(p)
	dir, name, err := s.openParent(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Create, nil, nil
		}
		return "", nil, fmt.Errorf("write %s: %w", p, err)
	}
	defer dir.Close()
	st, err := statAt(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		return Create, nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("stat %s: %w", host, err)
	}
	info := infoFromStat(p, &st)
	if info.IsDir {
		return "", nil, fmt.Errorf("write %s: is a folder", host)
	}
	if info.Symlink {
		return "", nil, fmt.Errorf("write %s: %w", p, s.linkAt(p, dir, name))
	}
	old, ok := s.readBefore(host, &st)
	if !ok {
		f, err := s.openFileAt(p, dir, name)
		if err != nil {
			return "", nil, fmt.Errorf("write %s: %w", p, err)
		}
		var id fileID
		old, id, err = readAll(f)
		f.Close()
		if err != nil {
			return "", nil, fmt.Errorf("read %s: %w", host, err)
		}
		if id != (fileID{}) {
			s.remember(host, id, old)
		}
	}
	before := &Snapshot{Data: old, Mode: info.Mode, UID: info.UID, GID: info.GID}
	same := bytes.Equal(old, data) && info.Mode == attr.Mode.Perm() &&
		(uid < 0 || uid == info.UID) && (gid < 0 || gid == info.GID)
	if same {
		return Noop, before, nil
	}
	return Update, before, nil
}

// write puts data at p atomically, in the folder opened inside the root.
func (s *Real) write(p string, data []byte, mode fs.FileMode, uid, gid int) error {
	dir, name, err := s.openParent(p)
	if err != nil {
		return fmt.Errorf("write %s: %w", s.HostPath(p), err)
	}
	defer dir.Close()
	return atomicWriteAt(dir, name, s.HostPath(p), data, mode, uid, gid)
}

func (s *Real) WriteFile(p string, data []byte, attr Attr) (Action, error) {
	uid, gid, err := s.resolveOwner(attr)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	action, before, err := s.plan(p, data, attr, uid, gid)
	if err == nil {
		s.log("file %s: %s (%d bytes, %s)", s.where(p), action, len(data), describeAttr(attr))
	}
	if err != nil || action == Noop {
		return action, err
	}
	if err := s.canOwn(attr, uid, gid); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	s.forget(s.HostPath(p))
	if err := s.write(p, data, attr.Mode.Perm(), uid, gid); err != nil {
		return "", err
	}
	s.record(FileChange{Path: p, Action: action, Before: before, After: data})
	return action, nil
}

func (s *Real) record(fc FileChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = appendChange(s.changes, fc)
}

// appendChange adds fc to changes keeping, for a path changed more than
// once, the state before the first change (what a rollback restores): a
// file this run created stays a Create however often it is rewritten.
func appendChange(changes []FileChange, fc FileChange) []FileChange {
	for _, c := range changes {
		if c.Path == fc.Path {
			fc.Before = c.Before
			if c.Before == nil && fc.Action == Update {
				fc.Action = Create
			}
		}
	}
	return append(changes, fc)
}

// describeAttr is an owner and mode as a log line shows them.
func describeAttr(a Attr) string {
	owner := a.User
	if owner == "" {
		owner = "caller"
	}
	if a.Group != "" {
		owner += ":" + a.Group
	}
	return fmt.Sprintf("%s %04o", owner, a.Mode.Perm())
}

func (s *Real) Changes() []FileChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FileChange(nil), s.changes...)
}

func (s *Real) EnsureDir(p string, attr Attr) (Action, error) {
	host := s.HostPath(p)
	uid, gid, err := s.resolveOwner(attr)
	if err != nil {
		return "", fmt.Errorf("create folder %s: %w", host, err)
	}
	info, err := s.Stat(p)
	if err == nil && info.Symlink {
		// A managed folder is not followed through a link either.
		return "", fmt.Errorf("create folder %s: %w", p, s.linkErr(p))
	}
	action, err := dirAction(host, info, err, attr, uid, gid)
	if err != nil || action == Noop {
		if err == nil {
			s.log("folder %s: noop (%s)", s.where(p), describeAttr(attr))
		}
		return action, err
	}
	if err := s.canOwn(attr, uid, gid); err != nil {
		return "", fmt.Errorf("create folder %s: %w", host, err)
	}
	if action == Create {
		if parent := filepath.Dir(p); parent != p {
			if _, err := s.Stat(parent); errors.Is(err, fs.ErrNotExist) {
				if _, err := s.EnsureDir(parent, Attr{Mode: 0o755}); err != nil {
					return "", err
				}
			}
		}
		// Mkdir with 0700 first so the folder is never wider than asked, then fix.
		if err := s.mkdir(p); err != nil {
			return "", fmt.Errorf("create folder %s: %w", host, err)
		}
	}
	if err := s.setDirAttr(p, attr.Mode.Perm(), uid, gid); err != nil {
		return "", err
	}
	s.log("folder %s: %s (%s)", s.where(p), action, describeAttr(attr))
	return action, nil
}

// linkErr is the *LinkError for the symlink at p.
func (s *Real) linkErr(p string) error {
	dir, name, err := s.openParent(p)
	if err != nil {
		return err
	}
	defer dir.Close()
	return s.linkAt(p, dir, name)
}

// isRootDir reports whether p is the --root folder itself, which belongs
// to the caller (it is the flag's argument) and is reached directly.
func (s *Real) isRootDir(p string) bool { return s.root != "/" && filepath.Clean(p) == "/" }

func (s *Real) mkdir(p string) error {
	if s.isRootDir(p) {
		return os.Mkdir(s.root, 0o700)
	}
	dir, name, err := s.openParent(p)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := unix.Mkdirat(int(dir.Fd()), name, 0o700); err != nil {
		return err
	}
	return dir.Sync()
}

// setDirAttr sets folder p's owner and mode through a descriptor opened
// without following a link.
func (s *Real) setDirAttr(p string, mode fs.FileMode, uid, gid int) error {
	host := s.HostPath(p)
	var f *os.File
	if s.isRootDir(p) {
		var err error
		if f, err = os.Open(s.root); err != nil {
			return fmt.Errorf("chmod %s: %w", host, err)
		}
	} else {
		dir, name, err := s.openParent(p)
		if err != nil {
			return fmt.Errorf("chmod %s: %w", host, err)
		}
		fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		dir.Close()
		if err != nil {
			return fmt.Errorf("chmod %s: %w", host, err)
		}
		f = os.NewFile(uintptr(fd), host)
	}
	defer f.Close()
	// Narrow first, then hand over: never a moment with a wider mode for the new owner.
	if err := f.Chmod(mode & 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", host, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", host, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", host, err)
	}
	return nil
}

// dirAction is what EnsureDir must do, given what Stat said about the
// folder; Real and DryRun share it so a dry run decides the same way.
func dirAction(host string, info FileInfo, statErr error, attr Attr, uid, gid int) (Action, error) {
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
		return Create, nil
	case statErr != nil:
		return "", fmt.Errorf("stat %s: %w", host, statErr)
	case !info.IsDir:
		return "", fmt.Errorf("create folder %s: a file is in the way", host)
	case info.Mode == attr.Mode.Perm() && (uid < 0 || uid == info.UID) && (gid < 0 || gid == info.GID):
		return Noop, nil
	}
	return Update, nil
}

func (s *Real) Remove(p string) (Action, error) {
	host := s.HostPath(p)
	dir, name, err := s.openParent(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Noop, nil
	}
	if err != nil {
		return "", fmt.Errorf("remove %s: %w", host, err)
	}
	defer dir.Close()
	st, err := statAt(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		return Noop, nil
	}
	if err != nil {
		return "", fmt.Errorf("remove %s: %w", host, err)
	}
	info := infoFromStat(p, &st)
	switch {
	case info.Symlink:
		return "", fmt.Errorf("remove %s: %w", p, s.linkAt(p, dir, name))
	case info.IsDir:
		return "", fmt.Errorf("remove %s: is a folder", host)
	}
	data, ok := s.readBefore(host, &st)
	if !ok {
		if f, err := s.openFileAt(p, dir, name); err == nil {
			data, _, _ = readAll(f)
			f.Close()
		}
	}
	s.forget(host)
	if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil {
		return "", fmt.Errorf("remove %s: %w", host, err)
	}
	if err := dir.Sync(); err != nil {
		return "", fmt.Errorf("remove %s: %w", host, err)
	}
	s.record(FileChange{Path: p, Action: Delete, Before: &Snapshot{Data: data, Mode: info.Mode, UID: info.UID, GID: info.GID}})
	s.log("file %s: delete", s.where(p))
	return Delete, nil
}

// Lock flocks the folder holding p, opened as every other access is.
func (s *Real) Lock(p string) (func(), error) {
	d, _, err := s.openParent(p)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", filepath.Dir(s.HostPath(p)), err)
	}
	dir := d.Name()
	s.log("lock %s", filepath.Dir(s.HostPath(p)))
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() {
		syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		d.Close()
	}, nil
}

func (s *Real) Run(ctx context.Context, cmd Cmd) (Output, error) {
	s.log("run: %s", cmd)
	out, err := s.runner.Run(ctx, cmd)
	if err != nil {
		s.log("run: %s: %v", cmd.Name, err)
	}
	return out, err
}

// Runner runs commands. ExecRunner runs them for real; tests record them.
type Runner interface {
	Run(ctx context.Context, cmd Cmd) (Output, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Cmd    string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Cmd, e.Code)
	if e.Stderr != "" {
		msg += ": " + string(bytes.TrimSpace([]byte(e.Stderr)))
	}
	return msg
}

func (ExecRunner) Run(ctx context.Context, cmd Cmd) (Output, error) {
	c := exec.CommandContext(ctx, cmd.Name, cmd.Args...)
	c.Env = append(os.Environ(), cmd.Env...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if cmd.Stream != nil {
		c.Stdout = teeWriter{&stdout, cmd.Stream}
		c.Stderr = teeWriter{&stderr, cmd.Stream}
	}
	err := c.Run()
	out := Output{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		out.ExitCode = ee.ExitCode()
		return out, &ExitError{Cmd: cmd.String(), Code: out.ExitCode, Stderr: stderr.String()}
	}
	if err != nil {
		return out, fmt.Errorf("%s: %w", cmd.String(), err)
	}
	return out, nil
}

type teeWriter struct {
	buf    *bytes.Buffer
	stream interface{ Write([]byte) (int, error) }
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.buf.Write(p)
	t.stream.Write(p)
	return len(p), nil
}
