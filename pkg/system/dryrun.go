package system

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DryRun reads the host for real and records every write and mutating
// command instead of doing it. Later reads in the same run (ReadFile, Stat,
// ReadDir) see the recorded writes, and a write fails where the real one
// would (no folder to write in), so a multi-step command plans exactly as it
// would apply.
type DryRun struct {
	host    *Real
	mu      sync.Mutex
	pending map[string]*pendingFile
	changes []FileChange
	ran     []Cmd
}

type pendingFile struct {
	data    []byte
	attr    Attr
	uid     int
	gid     int
	deleted bool
	dir     bool
}

// NewDryRun returns a dry run of sys (chezmoi's NewDryRunSystem): reads go
// to sys's host, writes are recorded. A DryRun is its own dry run.
func NewDryRun(sys System) *DryRun {
	if d, ok := sys.(*DryRun); ok {
		return d
	}
	return &DryRun{host: sys.real(), pending: map[string]*pendingFile{}}
}

func (d *DryRun) real() *Real { return d.host }

func (d *DryRun) Root() string             { return d.host.Root() }
func (d *DryRun) HostPath(p string) string { return d.host.HostPath(p) }
func (d *DryRun) IsDryRun() bool           { return true }
func (d *DryRun) Now() time.Time           { return d.host.Now() }

// SetLog is Real.SetLog; skipped commands are logged too.
func (d *DryRun) SetLog(logf func(format string, args ...any)) { d.host.SetLog(logf) }

func (d *DryRun) pendingAt(p string) *pendingFile {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending[filepath.Clean(p)]
}

func (d *DryRun) setPending(p string, pf *pendingFile) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending[filepath.Clean(p)] = pf
}

func (d *DryRun) ReadFile(p string) ([]byte, error) {
	if pf := d.pendingAt(p); pf != nil {
		switch {
		case pf.deleted:
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		case pf.dir:
			return nil, &fs.PathError{Op: "read", Path: p, Err: errors.New("is a directory")}
		}
		return append([]byte(nil), pf.data...), nil
	}
	return d.host.ReadFile(p)
}

func (d *DryRun) Stat(p string) (FileInfo, error) {
	if pf := d.pendingAt(p); pf != nil {
		if pf.deleted {
			return FileInfo{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
		}
		return pf.info(p, d.Now()), nil
	}
	return d.host.Stat(p)
}

func (pf *pendingFile) info(p string, now time.Time) FileInfo {
	return FileInfo{Path: p, Mode: pf.attr.Mode.Perm(), IsDir: pf.dir, UID: pf.uid, GID: pf.gid, Size: int64(len(pf.data)), ModTime: now}
}

// ReadDir lists the folder as it would be after the recorded writes:
// pending files and folders in it appear, deleted ones are gone.
func (d *DryRun) ReadDir(p string) ([]fs.DirEntry, error) {
	dir := filepath.Clean(p)
	entries, err := d.host.ReadDir(p)
	if pf := d.pendingAt(dir); err != nil && (pf == nil || !pf.dir) {
		return nil, err
	}
	byName := map[string]fs.DirEntry{}
	for _, e := range entries {
		byName[e.Name()] = e
	}
	d.mu.Lock()
	for path, pf := range d.pending {
		if filepath.Dir(path) != dir || path == dir {
			continue
		}
		name := filepath.Base(path)
		if pf.deleted {
			delete(byName, name)
		} else {
			byName[name] = fs.FileInfoToDirEntry(pendingInfo{name: name, pf: pf, now: d.Now()})
		}
	}
	d.mu.Unlock()
	out := make([]fs.DirEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// pendingInfo is a pending file as an fs.FileInfo, for ReadDir.
type pendingInfo struct {
	name string
	pf   *pendingFile
	now  time.Time
}

func (i pendingInfo) Name() string       { return i.name }
func (i pendingInfo) Size() int64        { return int64(len(i.pf.data)) }
func (i pendingInfo) ModTime() time.Time { return i.now }
func (i pendingInfo) IsDir() bool        { return i.pf.dir }
func (i pendingInfo) Sys() any           { return nil }
func (i pendingInfo) Mode() fs.FileMode {
	if i.pf.dir {
		return fs.ModeDir | i.pf.attr.Mode.Perm()
	}
	return i.pf.attr.Mode.Perm()
}

// isDir reports whether p is a folder once the recorded writes are done.
// Unlike Stat it follows a symlink, as writing into the folder does.
func (d *DryRun) isDir(p string) bool {
	if pf := d.pendingAt(p); pf != nil {
		return pf.dir && !pf.deleted
	}
	return d.host.isDir(p)
}

func (d *DryRun) WriteFile(p string, data []byte, attr Attr) (Action, error) {
	uid, gid, err := d.host.resolveOwner(attr)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	// The real write needs the folder; say so now, not at apply time.
	if parent := filepath.Dir(p); !d.isDir(parent) {
		var le *LinkError
		if err := d.host.dirError(parent); errors.As(err, &le) {
			return "", fmt.Errorf("write %s: %w", p, le)
		}
		return "", fmt.Errorf("write %s: %w", d.HostPath(p), &fs.PathError{Op: "open", Path: d.HostPath(parent), Err: fs.ErrNotExist})
	}
	var action Action
	var before *Snapshot
	switch pf := d.pendingAt(p); {
	case pf != nil && pf.dir:
		return "", fmt.Errorf("write %s: is a folder", d.HostPath(p))
	case pf != nil && !pf.deleted:
		if bytes.Equal(pf.data, data) && pf.attr.Mode.Perm() == attr.Mode.Perm() && (uid < 0 || uid == pf.uid) && (gid < 0 || gid == pf.gid) {
			return Noop, nil
		}
		action = Update
	case pf != nil:
		action = Create
	default:
		action, before, err = d.host.plan(p, data, attr, uid, gid)
		if err != nil || action == Noop {
			return action, err
		}
	}
	if err := d.host.canOwn(attr, uid, gid); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	uid, gid = d.ownerOrCaller(uid, gid)
	d.setPending(p, &pendingFile{data: append([]byte(nil), data...), attr: attr, uid: uid, gid: gid})
	d.record(FileChange{Path: p, Action: action, Before: before, After: data})
	d.host.log("file %s: would %s (%d bytes, %s)", d.host.where(p), action, len(data), describeAttr(attr))
	return action, nil
}

// ownerOrCaller is the owner a new file gets: the one asked for, or the
// process's own.
func (d *DryRun) ownerOrCaller(uid, gid int) (int, int) {
	me := d.host.CurrentAccount()
	if uid < 0 {
		uid = me.UID
	}
	if gid < 0 {
		gid = me.GID
	}
	return uid, gid
}

func (d *DryRun) record(fc FileChange) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.changes = appendChange(d.changes, fc)
}

// EnsureDir decides as Real.EnsureDir does, on the folder as the recorded
// writes left it, and records the missing parents it would create too.
func (d *DryRun) EnsureDir(p string, attr Attr) (Action, error) {
	host := d.HostPath(p)
	uid, gid, err := d.host.resolveOwner(attr)
	if err != nil {
		return "", fmt.Errorf("create folder %s: %w", host, err)
	}
	info, err := d.Stat(p)
	if err == nil && info.Symlink {
		return "", fmt.Errorf("create folder %s: %w", p, d.host.linkErr(p))
	}
	action, err := dirAction(host, info, err, attr, uid, gid)
	if err != nil || action == Noop {
		return action, err
	}
	if err := d.host.canOwn(attr, uid, gid); err != nil {
		return "", fmt.Errorf("create folder %s: %w", host, err)
	}
	if parent := filepath.Dir(p); action == Create && parent != p {
		if _, err := d.Stat(parent); errors.Is(err, fs.ErrNotExist) {
			if _, err := d.EnsureDir(parent, Attr{Mode: 0o755}); err != nil {
				return "", err
			}
		}
	}
	uid, gid = d.ownerOrCaller(uid, gid)
	if action == Update && (attr.User == "" || attr.Group == "") {
		// Real leaves an unnamed owner as it is.
		uid, gid = keepOwner(attr, info, uid, gid)
	}
	d.setPending(p, &pendingFile{attr: attr, uid: uid, gid: gid, dir: true})
	d.host.log("folder %s: would %s (%s)", d.host.where(p), action, describeAttr(attr))
	return action, nil
}

func keepOwner(attr Attr, info FileInfo, uid, gid int) (int, int) {
	if attr.User == "" {
		uid = info.UID
	}
	if attr.Group == "" {
		gid = info.GID
	}
	return uid, gid
}

func (d *DryRun) Remove(p string) (Action, error) {
	if _, err := d.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return Noop, nil
	}
	d.setPending(p, &pendingFile{deleted: true})
	d.record(FileChange{Path: p, Action: Delete})
	d.host.log("file %s: would delete", d.host.where(p))
	return Delete, nil
}

// Lock is a no-op: a dry run writes nothing, so it needs no exclusion.
func (d *DryRun) Lock(string) (func(), error) { return func() {}, nil }

func (d *DryRun) LookupUser(name string) (Account, error) { return d.host.LookupUser(name) }
func (d *DryRun) LookupGroup(name string) (int, error)    { return d.host.LookupGroup(name) }
func (d *DryRun) CurrentAccount() Account                 { return d.host.CurrentAccount() }

func (d *DryRun) Run(ctx context.Context, cmd Cmd) (Output, error) {
	if cmd.ReadOnly {
		return d.host.Run(ctx, cmd)
	}
	d.mu.Lock()
	d.ran = append(d.ran, cmd)
	d.mu.Unlock()
	d.host.log("run (skipped, dry run): %s", cmd)
	return Output{}, nil
}

// Commands lists the mutating commands a dry run skipped.
func (d *DryRun) Commands() []Cmd {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Cmd(nil), d.ran...)
}

func (d *DryRun) Changes() []FileChange {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]FileChange(nil), d.changes...)
}
