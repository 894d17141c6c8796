package system

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// stepHook, when set (tests only), runs before each step of atomicWrite with
// the temp file, so a test can see the order of the steps and the temp
// file's state at each one, and make any step fail.
var stepHook func(step string, tmp *os.File) error

func step(name string, tmp *os.File) error {
	if stepHook == nil {
		return nil
	}
	return stepHook(name, tmp)
}

// tempPrefix is how atomicWrite names its temp files for path; the
// random suffix createLockedTemp adds is all digits.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// atomicWrite writes a temp file in the target folder with its final owner
// and mode set before any data, fsyncs it, renames it over path and fsyncs the
// folder. The temp file is created 0600, so a secret is never readable by
// anyone else, even for a moment. The temp file is removed on any error,
// and temp files a killed writer left for the same path are swept first.
//
// The writer holds an flock on its temp file until the rename: a sweeper
// that can take that lock knows the writer is gone.
//
// path is a path on this machine; Real writes through atomicWriteAt on a
// folder it opened inside its root.
func atomicWrite(path string, data []byte, mode fs.FileMode, uid, gid int) error {
	dir, err := os.OpenFile(filepath.Dir(path), os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer dir.Close()
	return atomicWriteAt(dir, filepath.Base(path), path, data, mode, uid, gid)
}

// atomicWriteAt is atomicWrite of name in the open folder dir; every call
// is relative to dir, so nothing on the way can be swapped for a link
// meanwhile, and the temp file is created with O_EXCL|O_NOFOLLOW. host
// names the target in errors.
func atomicWriteAt(dir *os.File, name, host string, data []byte, mode fs.FileMode, uid, gid int) error {
	fill := func(f *os.File) error {
		_, err := f.Write(data)
		return err
	}
	return atomicFillAt(dir, name, host, fill, mode, uid, gid)
}

// atomicFillAt is atomicWriteAt of what fill writes into the temp file
// (WriteFrom streams a large file into it).
func atomicFillAt(dir *os.File, name, host string, fill func(*os.File) error, mode fs.FileMode, uid, gid int) (err error) {
	sweepStaleTemps(dir, name)
	f, tmp, err := createLockedTemp(dir, tempPrefix(name))
	if err != nil {
		return fmt.Errorf("write %s: %w", host, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(int(dir.Fd()), tmp, 0)
			err = fmt.Errorf("write %s: %w", host, err)
		}
	}()
	if uid >= 0 || gid >= 0 {
		if err = step("owner", f); err != nil {
			return err
		}
		if err = f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err = step("mode", f); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = step("write", f); err != nil {
		return err
	}
	if err = fill(f); err != nil {
		return err
	}
	if err = step("sync", f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = step("rename", f); err != nil {
		return err
	}
	if err = ignoringEINTR(func() error { return unix.Renameat(int(dir.Fd()), tmp, int(dir.Fd()), name) }); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: host, Err: err}
	}
	// Closing releases the temp file's lock, so only after the rename.
	if err = f.Close(); err != nil {
		return err
	}
	if err = step("syncdir", nil); err != nil {
		return err
	}
	return dir.Sync()
}

// createLockedTemp creates a temp file in dir and takes its flock. A
// sweeper may win the race for the lock between the two and unlink the new
// file; then the file at the name is no longer ours, and we start over.
func createLockedTemp(dir *os.File, prefix string) (*os.File, string, error) {
	for range 100 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		var fd int
		err := ignoringEINTR(func() error {
			var err error
			fd, err = unix.Openat(int(dir.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		})
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, "", &fs.PathError{Op: "open", Path: filepath.Join(dir.Name(), name), Err: err}
		}
		f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name))
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			unix.Unlinkat(int(dir.Fd()), name, 0)
			return nil, "", err
		}
		if sameFile(f, dir, name) {
			return f, name, nil
		}
		f.Close()
	}
	return nil, "", fmt.Errorf("create a temp file in %s: swept away 100 times", dir.Name())
}

// sameFile reports whether name in dir is still the file f has open.
func sameFile(f *os.File, dir *os.File, name string) bool {
	var a unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false
	}
	b, err := statAt(dir, name)
	return err == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

// sweepStaleTemps removes temp files a killed writer left for name: those
// named by tempPrefix(name) whose lock no live writer holds. Anything else
// in the folder, and a temp file a writer is still filling, is left alone.
// Failing to sweep is not an error: the write itself doesn't need it.
func sweepStaleTemps(dir *os.File, name string) {
	prefix := tempPrefix(name)
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	list := os.NewFile(uintptr(fd), dir.Name())
	entries, err := list.ReadDir(-1)
	list.Close()
	if err != nil {
		return
	}
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || suffix == "" || strings.Trim(suffix, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		removeIfUnlocked(dir, e.Name())
	}
}

func removeIfUnlocked(dir *os.File, tmp string) {
	fd, err := unix.Openat(int(dir.Fd()), tmp, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return // a live writer holds it
	}
	// Unlink while holding the lock, and only the file we locked.
	if sameFile(f, dir, tmp) {
		unix.Unlinkat(int(dir.Fd()), tmp, 0)
	}
}
