package system

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"sync"
	"time"
)

// DryRun reads the host for real and records every write and mutating
// command instead of doing it. Later reads in the same run see the recorded
// writes, so a multi-step command plans exactly as it would apply.
type DryRun struct {
	real    *Real
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

// NewDryRun wraps a Real.
func NewDryRun(real *Real) *DryRun {
	return &DryRun{real: real, pending: map[string]*pendingFile{}}
}

func (d *DryRun) Root() string             { return d.real.Root() }
func (d *DryRun) HostPath(p string) string { return d.real.HostPath(p) }
func (d *DryRun) IsDryRun() bool           { return true }
func (d *DryRun) Now() time.Time           { return d.real.Now() }

func (d *DryRun) ReadFile(p string) ([]byte, error) {
	d.mu.Lock()
	pf := d.pending[p]
	d.mu.Unlock()
	if pf != nil {
		if pf.deleted {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		return append([]byte(nil), pf.data...), nil
	}
	return d.real.ReadFile(p)
}

func (d *DryRun) ReadDir(p string) ([]fs.DirEntry, error) { return d.real.ReadDir(p) }

func (d *DryRun) Stat(p string) (FileInfo, error) {
	d.mu.Lock()
	pf := d.pending[p]
	d.mu.Unlock()
	if pf != nil {
		if pf.deleted {
			return FileInfo{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
		}
		return FileInfo{Path: p, Mode: pf.attr.Mode.Perm(), IsDir: pf.dir, UID: pf.uid, GID: pf.gid, Size: int64(len(pf.data)), ModTime: d.Now()}, nil
	}
	return d.real.Stat(p)
}

func (d *DryRun) WriteFile(p string, data []byte, attr Attr) (Action, error) {
	uid, gid, err := d.real.resolveOwner(attr)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	pf := d.pending[p]
	d.mu.Unlock()
	var action Action
	var before *Snapshot
	if pf != nil && !pf.deleted {
		if bytes.Equal(pf.data, data) && pf.attr.Mode.Perm() == attr.Mode.Perm() && (uid < 0 || uid == pf.uid) && (gid < 0 || gid == pf.gid) {
			return Noop, nil
		}
		action = Update
	} else if pf != nil {
		action = Create
	} else {
		action, before, err = d.real.plan(p, data, attr, uid, gid)
		if err != nil || action == Noop {
			return action, err
		}
	}
	if uid < 0 {
		uid = d.real.CurrentAccount().UID
	}
	if gid < 0 {
		gid = d.real.CurrentAccount().GID
	}
	d.mu.Lock()
	d.pending[p] = &pendingFile{data: append([]byte(nil), data...), attr: attr, uid: uid, gid: gid}
	d.mu.Unlock()
	d.record(FileChange{Path: p, Action: action, Before: before, After: data})
	return action, nil
}

func (d *DryRun) record(fc FileChange) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.changes {
		if c.Path == fc.Path {
			fc.Before = c.Before
		}
	}
	d.changes = append(d.changes, fc)
}

func (d *DryRun) EnsureDir(p string, attr Attr) (Action, error) {
	uid, gid, err := d.real.resolveOwner(attr)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	_, seen := d.pending[p]
	d.mu.Unlock()
	if seen {
		return Noop, nil
	}
	fi, err := d.real.Stat(p)
	var action Action
	switch {
	case errors.Is(err, fs.ErrNotExist):
		action = Create
	case err != nil:
		return "", err
	case fi.Mode == attr.Mode.Perm() && (uid < 0 || uid == fi.UID) && (gid < 0 || gid == fi.GID):
		return Noop, nil
	default:
		action = Update
	}
	d.mu.Lock()
	d.pending[p] = &pendingFile{attr: attr, uid: uid, gid: gid, dir: true}
	d.mu.Unlock()
	return action, nil
}

func (d *DryRun) Remove(p string) (Action, error) {
	if _, err := d.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return Noop, nil
	}
	d.mu.Lock()
	d.pending[p] = &pendingFile{deleted: true}
	d.mu.Unlock()
	d.record(FileChange{Path: p, Action: Delete})
	return Delete, nil
}

// Lock is a no-op: a dry run writes nothing, so it needs no exclusion.
func (d *DryRun) Lock(string) (func(), error) { return func() {}, nil }

func (d *DryRun) LookupUser(name string) (Account, error) { return d.real.LookupUser(name) }
func (d *DryRun) LookupGroup(name string) (int, error)    { return d.real.LookupGroup(name) }
func (d *DryRun) CurrentAccount() Account                 { return d.real.CurrentAccount() }

func (d *DryRun) Run(ctx context.Context, cmd Cmd) (Output, error) {
	if cmd.ReadOnly {
		return d.real.Run(ctx, cmd)
	}
	d.mu.Lock()
	d.ran = append(d.ran, cmd)
	d.mu.Unlock()
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
