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
	"sync"
	"syscall"
	"time"
)

// Real reads and writes the host (under its root) and runs commands for real.
type Real struct {
	root    string
	runner  Runner
	clock   func() time.Time
	mu      sync.Mutex
	changes []FileChange
}

// Option configures a Real.
type Option func(*Real)

// WithRunner replaces the command runner (tests use a recording one).
func WithRunner(r Runner) Option { return func(s *Real) { s.runner = r } }

// WithClock replaces the clock.
func WithClock(now func() time.Time) Option { return func(s *Real) { s.clock = now } }

// NewReal returns a System on the host, with target paths under root.
func NewReal(root string, opts ...Option) *Real {
	if root == "" {
		root = "/"
	}
	s := &Real{root: filepath.Clean(root), runner: ExecRunner{}, clock: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
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

func (s *Real) ReadFile(p string) ([]byte, error) { return os.ReadFile(s.HostPath(p)) }

func (s *Real) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(s.HostPath(p)) }

func (s *Real) Stat(p string) (FileInfo, error) {
	fi, err := os.Lstat(s.HostPath(p))
	if err != nil {
		return FileInfo{}, err
	}
	return infoFrom(p, fi), nil
}

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

// plan compares path with the desired state without writing anything.
func (s *Real) plan(p string, data []byte, attr Attr, uid, gid int) (Action, *Snapshot, error) {
	host := s.HostPath(p)
	fi, err := os.Lstat(host)
	if errors.Is(err, fs.ErrNotExist) {
		return Create, nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("stat %s: %w", host, err)
	}
	if fi.IsDir() {
		return "", nil, fmt.Errorf("write %s: is a folder", host)
	}
	info := infoFrom(p, fi)
	var old []byte
	if !info.Symlink {
		old, err = os.ReadFile(host)
		if err != nil {
			return "", nil, fmt.Errorf("read %s: %w", host, err)
		}
	}
	before := &Snapshot{Data: old, Mode: info.Mode, UID: info.UID, GID: info.GID}
	same := !info.Symlink && bytes.Equal(old, data) && info.Mode == attr.Mode.Perm() &&
		(uid < 0 || uid == info.UID) && (gid < 0 || gid == info.GID)
	if same {
		return Noop, before, nil
	}
	return Update, before, nil
}

func (s *Real) WriteFile(p string, data []byte, attr Attr) (Action, error) {
	uid, gid, err := s.resolveOwner(attr)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	action, before, err := s.plan(p, data, attr, uid, gid)
	if err != nil || action == Noop {
		return action, err
	}
	if err := atomicWrite(s.HostPath(p), data, attr.Mode.Perm(), uid, gid); err != nil {
		return "", err
	}
	s.record(FileChange{Path: p, Action: action, Before: before, After: data})
	return action, nil
}

func (s *Real) record(fc FileChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.changes {
		if c.Path == fc.Path {
			// Keep the state before the first change: that is what a rollback restores.
			fc.Before = c.Before
			if c.Before == nil && fc.Action == Update {
				fc.Action = Create
			}
		}
	}
	s.changes = append(s.changes, fc)
}

func (s *Real) Changes() []FileChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FileChange(nil), s.changes...)
}

// atomicWrite writes a temp file in the target folder with its final owner
// and mode set before any data, fsyncs it, renames it over path and fsyncs the
// folder. os.CreateTemp creates the file 0600, so a secret is never readable
// by anyone else, even for a moment. The temp file is removed on any error.
func atomicWrite(path string, data []byte, mode fs.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if uid >= 0 || gid >= 0 {
		if err = f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Real) EnsureDir(p string, attr Attr) (Action, error) {
	host := s.HostPath(p)
	uid, gid, err := s.resolveOwner(attr)
	if err != nil {
		return "", fmt.Errorf("create folder %s: %w", host, err)
	}
	fi, err := os.Lstat(host)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if parent := filepath.Dir(p); parent != p {
			if _, err := os.Stat(s.HostPath(parent)); errors.Is(err, fs.ErrNotExist) {
				if _, err := s.EnsureDir(parent, Attr{Mode: 0o755}); err != nil {
					return "", err
				}
			}
		}
		// Mkdir with 0700 first so the folder is never wider than asked, then fix.
		if err := os.Mkdir(host, 0o700); err != nil {
			return "", fmt.Errorf("create folder %s: %w", host, err)
		}
		if err := setAttr(host, attr.Mode.Perm(), uid, gid); err != nil {
			return "", err
		}
		return Create, nil
	case err != nil:
		return "", fmt.Errorf("stat %s: %w", host, err)
	case !fi.IsDir():
		return "", fmt.Errorf("create folder %s: a file is in the way", host)
	}
	info := infoFrom(p, fi)
	if info.Mode == attr.Mode.Perm() && (uid < 0 || uid == info.UID) && (gid < 0 || gid == info.GID) {
		return Noop, nil
	}
	if err := setAttr(host, attr.Mode.Perm(), uid, gid); err != nil {
		return "", err
	}
	return Update, nil
}

func setAttr(host string, mode fs.FileMode, uid, gid int) error {
	// Narrow first, then hand over: never a moment with a wider mode for the new owner.
	if err := os.Chmod(host, mode&0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", host, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(host, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", host, err)
		}
	}
	if err := os.Chmod(host, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", host, err)
	}
	return nil
}

func (s *Real) Remove(p string) (Action, error) {
	host := s.HostPath(p)
	fi, err := os.Lstat(host)
	if errors.Is(err, fs.ErrNotExist) {
		return Noop, nil
	}
	if err != nil {
		return "", fmt.Errorf("remove %s: %w", host, err)
	}
	info := infoFrom(p, fi)
	data, _ := os.ReadFile(host)
	if err := os.Remove(host); err != nil {
		return "", fmt.Errorf("remove %s: %w", host, err)
	}
	if err := syncDir(filepath.Dir(host)); err != nil {
		return "", fmt.Errorf("remove %s: %w", host, err)
	}
	s.record(FileChange{Path: p, Action: Delete, Before: &Snapshot{Data: data, Mode: info.Mode, UID: info.UID, GID: info.GID}})
	return Delete, nil
}

func (s *Real) Lock(p string) (func(), error) {
	dir := filepath.Dir(s.HostPath(p))
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
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
	return s.runner.Run(ctx, cmd)
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
