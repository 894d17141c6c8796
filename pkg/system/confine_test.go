package system

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

func mkfifo(p string) error { return unix.Mkfifo(p, 0o600) }

// snapshotTree is every file and link under dir with its content (or link
// target), so a test can tell that nothing there changed.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := os.Lstat(p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[p] = "link " + target
		case fi.IsDir():
			out[p] = "dir " + fi.Mode().String()
		default:
			data, _ := os.ReadFile(p)
			out[p] = fi.Mode().String() + " " + string(data)
		}
		return nil
	})
	return out
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, v := range after {
		if before[p] != v {
			t.Errorf("%s: %s changed: %q -> %q", what, p, before[p], v)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s: %s removed", what, p)
		}
	}
}

// wantLink checks err is a *LinkError for link (target), and bad input.
func wantLink(t *testing.T, what string, err error, link, target string) {
	t.Helper()
	var le *LinkError
	if !errors.As(err, &le) {
		t.Errorf("%s: want a symlink error naming %s, got %v", what, link, err)
		return
	}
	if le.Path != link || le.Target != target || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), target) {
		t.Errorf("%s: error %q (link %s -> %s), want it to name %s -> %s", what, err, le.Path, le.Target, link, target)
	}
	if !errs.IsInput(err) {
		t.Errorf("%s: a symlink error must be bad input (exit 3): %v", what, err)
	}
}

// TestRootConfinesFolderLinks: under --root, a folder on the way that is a
// symlink leading out of the root (absolute, or ".." past the top) is
// refused by every read and write, naming the link, and nothing outside
// the root changes; a relative link that stays inside is followed, as
// chroot would.
func TestRootConfinesFolderLinks(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("host:secret\n"), 0o600)
	os.Mkdir(filepath.Join(outside, "certs"), 0o755)
	for name, target := range map[string]string{
		"absolute":     outside,
		"dot-dot":      "../../../../../../../../../../.." + outside,
		"dot-dot-near": "",
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "root")
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			if target == "" {
				// ../../host, read in root/etc, is base/host: beside the root.
				os.Symlink(outside, filepath.Join(base, "host"))
				target = "../../host"
			}
			if err := os.Symlink(target, filepath.Join(root, "etc/mosquitto")); err != nil {
				t.Fatal(err)
			}
			before := snapshotTree(t, outside)
			real := NewReal(root)
			for sysName, sys := range map[string]System{"real": real, "dry-run": NewDryRun(real)} {
				_, err := sys.WriteFile("/etc/mosquitto/passwd", []byte("mallory:x\n"), Attr{Mode: 0o600})
				wantLink(t, sysName+" write", err, "/etc/mosquitto", target)
				_, err = sys.WriteFile("/etc/mosquitto/new", []byte("x"), Attr{Mode: 0o600})
				wantLink(t, sysName+" create", err, "/etc/mosquitto", target)
				_, err = sys.ReadFile("/etc/mosquitto/passwd")
				wantLink(t, sysName+" read", err, "/etc/mosquitto", target)
				_, err = OpenRead(sys, "/etc/mosquitto/passwd")
				wantLink(t, sysName+" open", err, "/etc/mosquitto", target)
				_, err = sys.Stat("/etc/mosquitto/passwd")
				wantLink(t, sysName+" stat", err, "/etc/mosquitto", target)
				_, err = sys.ReadDir("/etc/mosquitto/certs")
				wantLink(t, sysName+" readdir", err, "/etc/mosquitto", target)
				_, err = sys.EnsureDir("/etc/mosquitto/certs/x", Attr{Mode: 0o700})
				wantLink(t, sysName+" mkdir", err, "/etc/mosquitto", target)
				_, err = sys.Remove("/etc/mosquitto/passwd")
				if sysName == "real" {
					wantLink(t, sysName+" remove", err, "/etc/mosquitto", target)
				}
				_, err = sys.Lock("/etc/mosquitto/passwd")
				if sysName == "real" {
					wantLink(t, sysName+" lock", err, "/etc/mosquitto", target)
				}
			}
			sameTree(t, "outside the root", before, snapshotTree(t, outside))
		})
	}
}

// TestRootFollowsInsideLinks: a relative folder link that stays inside the
// root is followed, as chroot would; on "/" an absolute folder link is
// followed too (everything is inside "/").
func TestRootFollowsInsideLinks(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "srv/mosquitto"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("../srv/mosquitto", filepath.Join(root, "etc/mosquitto"))
	s := NewReal(root)
	if _, err := s.WriteFile("/etc/mosquitto/passwd", []byte("a:b\n"), Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "srv/mosquitto/passwd")); string(got) != "a:b\n" {
		t.Fatalf("inside link not followed: %q", got)
	}
	host := t.TempDir()
	os.Mkdir(filepath.Join(host, "real"), 0o755)
	os.Symlink(filepath.Join(host, "real"), filepath.Join(host, "link"))
	if _, err := NewReal("/").WriteFile(filepath.Join(host, "link/f"), []byte("x"), Attr{Mode: 0o600}); err != nil {
		t.Fatalf("on /, an absolute folder link: %v", err)
	}
}

// TestManagedFileLinksRefused: a file mosqprov reads or writes that is
// itself a symlink is refused (named with its target), never read through
// and never replaced, under a root and on "/", in a dry run too.
func TestManagedFileLinksRefused(t *testing.T) {
	for _, rooted := range []bool{true, false} {
		base := t.TempDir()
		os.MkdirAll(filepath.Join(base, "etc/mosquitto"), 0o755)
		secret := filepath.Join(base, "shadow")
		os.WriteFile(secret, []byte("root:$6$secret\n"), 0o600)
		link := filepath.Join(base, "etc/mosquitto/passwd")
		os.Symlink(secret, link)
		sys, p := NewReal(base), "/etc/mosquitto/passwd"
		if !rooted {
			sys, p = NewReal("/"), link
		}
		before := snapshotTree(t, base)
		for name, s := range map[string]System{"real": sys, "dry-run": NewDryRun(sys)} {
			_, err := s.WriteFile(p, []byte("alice:x\n"), Attr{Mode: 0o640})
			wantLink(t, name+" write", err, p, secret)
			_, err = s.WriteFile(p, []byte("root:$6$secret\n"), Attr{Mode: 0o600})
			wantLink(t, name+" write same bytes", err, p, secret)
			_, err = s.ReadFile(p)
			wantLink(t, name+" read", err, p, secret)
			_, err = OpenRead(s, p)
			wantLink(t, name+" open", err, p, secret)
			_, err = s.EnsureDir(p, Attr{Mode: 0o700})
			wantLink(t, name+" folder", err, p, secret)
			if name == "real" {
				_, err = s.Remove(p)
				wantLink(t, name+" remove", err, p, secret)
			}
			if fi, err := s.Stat(p); err != nil || !fi.Symlink {
				t.Errorf("%s stat: a link must show as a link: %+v %v", name, fi, err)
			}
		}
		sameTree(t, "after refused writes", before, snapshotTree(t, base))
	}
}

// TestReadRefusesSpecialFiles: a FIFO planted where a file is read would
// block forever; it is refused at once.
func TestReadRefusesSpecialFiles(t *testing.T) {
	root := t.TempDir()
	if err := mkfifo(filepath.Join(root, "fifo")); err != nil {
		t.Skip(err)
	}
	_, err := NewReal(root).ReadFile("/fifo")
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("fifo: %v", err)
	}
}

// TestLookupUnderRootRefusesLinks: an image whose /etc/passwd is a link
// (to the host's) is not read through, nor silently replaced by the host's
// accounts: owners would get the host's ids.
func TestLookupUnderRootRefusesLinks(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(root, "etc/passwd"))
	os.Symlink("/etc/group", filepath.Join(root, "etc/group"))
	s := NewReal(root)
	_, err := s.LookupUser("root")
	wantLink(t, "user", err, "/etc/passwd", "/etc/passwd")
	_, err = s.LookupGroup("root")
	wantLink(t, "group", err, "/etc/group", "/etc/group")
}
