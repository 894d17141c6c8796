package system

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
// random suffix os.CreateTemp adds is all digits.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// atomicWrite writes a temp file in the target folder with its final owner
// and mode set before any data, fsyncs it, renames it over path and fsyncs the
// folder. os.CreateTemp creates the file 0600, so a secret is never readable
// by anyone else, even for a moment. The temp file is removed on any error,
// and temp files a killed writer left for the same path are swept first.
//
// The writer holds an flock on its temp file until the rename: a sweeper
// that can take that lock knows the writer is gone.
func atomicWrite(path string, data []byte, mode fs.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(path)
	sweepStaleTemps(path)
	f, err := createLockedTemp(dir, tempPrefix(path))
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
	if _, err = f.Write(data); err != nil {
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
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Closing releases the temp file's lock, so only after the rename.
	if err = f.Close(); err != nil {
		return err
	}
	if err = step("syncdir", nil); err != nil {
		return err
	}
	return syncDir(dir)
}

// createLockedTemp creates a temp file and takes its flock. A sweeper may
// win the race for the lock between the two and unlink the new file; then
// the file at the name is no longer ours, and we start over.
func createLockedTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		f, err := os.CreateTemp(dir, prefix+"*")
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if sameFile(f, f.Name()) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("create a temp file in %s: swept away 100 times", dir)
}

func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// sweepStaleTemps removes temp files a killed writer left for path: those
// named by tempPrefix(path) whose lock no live writer holds. Anything else
// in the folder, and a temp file a writer is still filling, is left alone.
// Failing to sweep is not an error: the write itself doesn't need it.
func sweepStaleTemps(path string) {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || suffix == "" || strings.Trim(suffix, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		removeIfUnlocked(filepath.Join(dir, e.Name()))
	}
}

func removeIfUnlocked(tmp string) {
	f, err := os.OpenFile(tmp, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return // a live writer holds it
	}
	// Unlink while holding the lock, and only the file we locked.
	if sameFile(f, tmp) {
		os.Remove(tmp)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
