// Package nspawn boots a real Debian (bookworm and trixie, see Suites) with
// systemd as PID 1 under systemd-nspawn, for end-to-end tests of what
// mosqprov does to apt and systemd. The host's own PID 1 is not systemd on
// CI, so this is the only way to exercise systemctl, journalctl and apt for
// real.
//
// A tree is built once with debootstrap (2 to 11 minutes, see Image), cached
// as a tar.zst named after a hash of its recipe, and unpacked fresh for
// every container, so no test sees another test's changes.
//
// Containers have a private network (--private-network): only their own
// loopback, nothing of the host's ports, so a broker on the host's 1883
// never answers a test's client meant for the container's broker. apt inside
// still works without a network: the packages a test installs (Recipe.Repo)
// are downloaded on the host when the tree is built, into a local apt
// repository inside the tree that is its only source.
package nspawn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DefaultCacheDir holds the cached trees: MOSQPROV_E2E_CACHE when set (a
// cold run in a scratch folder, leaving the shared cache alone), otherwise
// /var/cache/mosqprov-e2e, outside the repository so a fresh clone reuses
// it, and under /var/cache because building it needs root anyway.
var DefaultCacheDir = cacheDirFromEnv()

func cacheDirFromEnv() string {
	if d := os.Getenv("MOSQPROV_E2E_CACHE"); d != "" {
		return d
	}
	return "/var/cache/mosqprov-e2e"
}

// BootLock is held (flock) from a container's boot until it has stopped,
// so only one container runs on the host at a time: `go test ./...` runs
// the packages that boot them (internal/e2e, pkg/plan, pkg/doctor) as
// parallel processes on a 2-core machine, where two booted systemds and two
// apt runs at once only slow each other down. (Each container has its own
// network, so they would no longer clash on ports.) It is in /run, not in
// the cache folder, so runs with different MOSQPROV_E2E_CACHE share it. A
// test must not boot a second container while its first one runs: it would
// wait for itself.
const BootLock = "/run/mosqprov-nspawn.lock"

// recipeVersion changes whenever Build does something different with the
// same Recipe, so an old tarball is never reused for a new recipe.
const recipeVersion = "2"

// Recipe is everything that decides the tree's content.
type Recipe struct {
	Suite   string
	Mirror  string
	Include []string // installed by debootstrap
	// Repo are packages downloaded (with their dependencies missing from
	// the tree), not installed, into LocalRepo, the tree's only apt source:
	// apt inside a container installs them without a network.
	Repo []string
	// Next, when set, is the next Debian release's (testing's) build of
	// some packages, downloaded with everything they need from that
	// release into NextRepo, a second local source pinned low: apt keeps
	// installing Repo's versions unless told otherwise (`-t forky`).
	Next *NextRelease
}

// NextRelease is a later Debian release's packages for a tree (Recipe.Next).
type NextRelease struct {
	Suite string   // "forky"
	Repo  []string // downloaded, with what they need from Suite, into NextRepo
}

// NextRepo is the tree's second local apt repository (Recipe.Next), whose
// Release names its suite, pinned at priority 100 (NextPin): `apt-get
// install -t forky`, or APT::Default-Release "forky", installs from it.
const NextRepo = "/srv/mosqprov-e2e-next"

// NextPin is the tree's apt preferences file for NextRepo.
const NextPin = "/etc/apt/preferences.d/mosqprov-e2e-next"

// Forky is Debian 14 "forky" (testing today), whose mosquitto 2.1.2 the
// trixie tree carries in NextRepo: trixie's systemd boots here where sid's
// does not, and its mosquitto installs on trixie with forky's newer libc6
// and the libraries the broker links (libdlt3 needs libc6 2.42).
const Forky = "forky"

// LocalRepo is the tree's own apt repository (flat, "deb [trusted=yes]
// file:/srv/mosqprov-e2e-debs ./"), holding Recipe.Repo.
const LocalRepo = "/srv/mosqprov-e2e-debs"

// Suites are the Debian releases the end-to-end tests boot, oldest first:
// Debian 12 bookworm (mosquitto 2.0.11) and Debian 13 trixie (2.0.21, the
// base of today's Raspberry Pi OS). Debian sid (mosquitto 2.1) is not here:
// its systemd does not boot on a host with cgroup v1; see SidRecipe.
var Suites = []string{"bookworm", "trixie"}

// DefaultRecipe is RecipeFor the oldest suite.
func DefaultRecipe() Recipe { return RecipeFor(Suites[0]) }

// RecipeFor is suite's minbase with systemd, WITHOUT mosquitto, so a test
// can install it with apt inside the container (from LocalRepo). procps is
// there as on every Raspberry Pi OS and Debian install: the mosquitto unit
// reloads with its /bin/kill.
//
// trixie's tree also carries forky's mosquitto 2.1 (Recipe.Next), so 2.1
// runs under a real systemd in the trixie container (sid's systemd does
// not boot here).
func RecipeFor(suite string) Recipe {
	r := Recipe{
		Suite:   suite,
		Mirror:  HostMirror(),
		Include: []string{"systemd", "systemd-sysv", "dbus", "ca-certificates", "procps"},
		Repo:    []string{"mosquitto", "mosquitto-clients"},
	}
	if suite == "trixie" {
		r.Next = &NextRelease{Suite: Forky, Repo: []string{"mosquitto", "mosquitto-clients"}}
	}
	return r
}

// SidRecipe is Debian sid with mosquitto (2.1) installed, used as a chroot
// (Chroot), not booted.
func SidRecipe() Recipe {
	return Recipe{
		Suite:   "sid",
		Mirror:  HostMirror(),
		Include: []string{"ca-certificates", "mosquitto", "mosquitto-clients"},
	}
}

// Key names the recipe's tarball.
func (r Recipe) Key() string {
	parts := []string{recipeVersion, r.Suite, r.Mirror, strings.Join(r.Include, ","), strings.Join(r.Repo, ",")}
	if r.Next != nil {
		parts = append(parts, "next:"+r.Next.Suite, strings.Join(r.Next.Repo, ","))
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return r.Suite + "-" + hex.EncodeToString(h[:8])
}

// HostMirror is the Debian mirror the host's apt uses: the machines this
// runs on reach only their configured mirrors.
func HostMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// deb822 stanzas: the first URIs line whose stanza is a plain
		// Debian archive (not the security one) wins.
		for _, stanza := range strings.Split(string(data), "\n\n") {
			var uri string
			bookworm := false
			for _, line := range strings.Split(stanza, "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				switch strings.TrimSpace(k) {
				case "URIs":
					uri = strings.Fields(v)[0]
				case "Suites":
					for _, s := range strings.Fields(v) {
						bookworm = bookworm || s == "bookworm"
					}
				}
			}
			if uri != "" && bookworm {
				return strings.TrimSuffix(uri, "/")
			}
		}
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range append([]string{"/etc/apt/sources.list"}, lists...) {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 3 && fields[0] == "deb" && fields[2] == "bookworm" {
				return strings.TrimSuffix(fields[1], "/")
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// Missing says why containers can't run here ("" when they can).
func Missing() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, bin := range []string{"systemd-nspawn", "debootstrap", "zstd", "nsenter", "tar", "chroot"} {
		if _, err := lookPath(bin); err != nil {
			return bin + " not found (apt-get install -y systemd-container debootstrap zstd)"
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		return "no /sys/fs/cgroup"
	}
	return ""
}

// Require skips the test, loudly, when containers can't run here; with
// CI=true it fails instead, so CI can never pass without running them.
func Require(t testing.TB) {
	t.Helper()
	why := Missing()
	if why == "" {
		return
	}
	msg := "END-TO-END TEST IN A REAL SYSTEMD NOT RUN: " + why + " (needs root, systemd-nspawn, debootstrap, zstd)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so this is a failure")
	}
	fmt.Fprintln(os.Stderr, "*** "+msg)
	t.Skip(msg)
}

func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, bin)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", bin)
}

// Image returns the tarball for r in cacheDir, building it first when it is
// missing. Concurrent callers of one recipe wait for one build; different
// recipes build at the same time. Cold, on the 2-core machine this was
// written on (loaded by other test runs), debootstrap took 6 minutes for
// bookworm, 11 for trixie and 13 for sid; .ci/run starts all three builds
// in the background first thing (TestBuildImages), so they overlap with
// the lint and the other tests.
func Image(ctx context.Context, cacheDir string, r Recipe, log func(string, ...any)) (string, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tarball := filepath.Join(cacheDir, r.Key()+".tar.zst")
	lock, err := os.OpenFile(filepath.Join(cacheDir, "."+r.Key()+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(tarball); err == nil {
		now := time.Now()
		os.Chtimes(tarball, now, now) // in use: prune keeps it
		return tarball, nil
	}
	log("nspawn: building %s (%s) with debootstrap from %s (minutes, once)", tarball, r.Suite, r.Mirror)
	start := time.Now()
	build, err := os.MkdirTemp(cacheDir, "build-")
	if err != nil {
		return "", err
	}
	rootfs := filepath.Join(build, "rootfs")
	defer func() {
		// debootstrap mounts /proc and /sys in the tree while it runs; a
		// build cut short (a timeout) leaves them mounted, and removing
		// the folder must not walk into the host's.
		unmountUnder(rootfs)
		os.RemoveAll(build)
	}()
	args := []string{"--variant=minbase", "--include=" + strings.Join(r.Include, ","), r.Suite, rootfs, r.Mirror}
	if out, err := exec.CommandContext(ctx, "debootstrap", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap: %v\n%s", err, tail(out, 30))
	}
	// minbase has no /etc/hosts, and the broker's clients resolve localhost.
	if err := os.WriteFile(filepath.Join(rootfs, "etc/hosts"), []byte("127.0.0.1 localhost\n::1 localhost\n"), 0o644); err != nil {
		return "", err
	}
	if r.Next != nil {
		nextStart := time.Now()
		if err := nextRepo(ctx, rootfs, r.Mirror, *r.Next); err != nil {
			return "", err
		}
		log("nspawn: %s's %s and what they need, into %s: %s", r.Next.Suite, strings.Join(r.Next.Repo, ", "), NextRepo, time.Since(nextStart).Round(time.Second))
	}
	if len(r.Repo) > 0 {
		if err := localRepo(ctx, rootfs, r.Repo, r.Next); err != nil {
			return "", err
		}
	}
	if out, err := exec.CommandContext(ctx, "chroot", rootfs, "apt-get", "clean").CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get clean: %v\n%s", err, out)
	}
	tmp := tarball + ".tmp"
	if out, err := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-I", "zstd -T0", "-C", rootfs, "-cpf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("pack %s: %v\n%s", tmp, err, out)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		return "", err
	}
	prune(cacheDir, tarball)
	log("nspawn: built %s in %s", tarball, time.Since(start).Round(time.Second))
	return tarball, nil
}

// prune removes the trees of recipes no test used for a week (a recipe
// change leaves its predecessor behind), keeping keep.
func prune(cacheDir, keep string) {
	old, _ := filepath.Glob(filepath.Join(cacheDir, "*.tar.zst"))
	for _, o := range old {
		if fi, err := os.Stat(o); err == nil && o != keep && time.Since(fi.ModTime()) > 7*24*time.Hour {
			os.Remove(o)
		}
	}
}

// unmountUnder lazily unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			points = append(points, f[1])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// localRepo downloads pkgs (and what they need that the tree lacks) with
// the tree's own apt, through the host's network, into LocalRepo, indexes
// them, and makes that repository the tree's only apt source, with its
// package lists already fetched.
func localRepo(ctx context.Context, rootfs string, pkgs []string, next *NextRelease) error {
	apt := chrootApt(ctx, rootfs)
	// debootstrap leaves every package of the base system in apt's cache:
	// the repository gets only what the tree lacks.
	if err := apt("clean"); err != nil {
		return err
	}
	if err := apt("update"); err != nil {
		return err
	}
	if err := apt(append([]string{"install", "-y", "--download-only"}, pkgs...)...); err != nil {
		return err
	}
	if err := flatRepo(ctx, rootfs, LocalRepo, pkgs, ""); err != nil {
		return err
	}
	// The mirror goes: a container has no network to reach it.
	lists, _ := filepath.Glob(filepath.Join(rootfs, "etc/apt/sources.list.d/*"))
	for _, l := range lists {
		os.Remove(l)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/apt/sources.list"), []byte("deb [trusted=yes] file:"+LocalRepo+" ./\n"), 0o644); err != nil {
		return err
	}
	if next != nil {
		source := "deb [trusted=yes] file:" + NextRepo + " ./\n"
		if err := os.WriteFile(filepath.Join(rootfs, "etc/apt/sources.list.d/mosqprov-e2e-next.list"), []byte(source), 0o644); err != nil {
			return err
		}
		pin := "Package: *\nPin: release n=" + next.Suite + "\nPin-Priority: 100\n"
		if err := os.MkdirAll(filepath.Join(rootfs, filepath.Dir(NextPin)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(rootfs, NextPin), []byte(pin), 0o644); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(filepath.Join(rootfs, "var/lib/apt/lists")); err != nil {
		return err
	}
	os.MkdirAll(filepath.Join(rootfs, "var/lib/apt/lists/partial"), 0o755)
	return apt("update")
}

// chrootApt runs the tree's apt-get (in a chroot) and says what went wrong.
func chrootApt(ctx context.Context, rootfs string) func(args ...string) error {
	return func(args ...string) error {
		// sid's Release file expires within days of a snapshot.
		full := append([]string{rootfs, "apt-get", "-q", "-o", "Acquire::Check-Valid-Until=false"}, args...)
		cmd := exec.CommandContext(ctx, "chroot", full...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s in %s: %v\n%s", strings.Join(args, " "), rootfs, err, tail(out, 30))
		}
		return nil
	}
}

// nextRepo downloads next.Repo from next.Suite of mirror, with what they
// need from that suite (apt-get -t), into NextRepo, before localRepo fills
// the cache with the tree's own release's packages. The tree's sources are
// left as they were.
func nextRepo(ctx context.Context, rootfs, mirror string, next NextRelease) error {
	apt := chrootApt(ctx, rootfs)
	source := filepath.Join(rootfs, "etc/apt/sources.list.d/mosqprov-next.list")
	if err := os.WriteFile(source, []byte("deb "+mirror+" "+next.Suite+" main\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(source)
	if err := apt("clean"); err != nil {
		return err
	}
	if err := apt("update"); err != nil {
		return err
	}
	if err := apt(append([]string{"install", "-y", "--download-only", "-t", next.Suite}, next.Repo...)...); err != nil {
		return err
	}
	if err := flatRepo(ctx, rootfs, NextRepo, next.Repo, next.Suite); err != nil {
		return err
	}
	os.Remove(source)
	return apt("update")
}

// flatRepo moves the .debs apt downloaded into the tree's folder repo and
// indexes them there (Packages, Release); a suite names the release in
// Release, for apt's pins and -t.
func flatRepo(ctx context.Context, rootfs, repoDir string, pkgs []string, suite string) error {
	repo := filepath.Join(rootfs, repoDir)
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(rootfs, "var/cache/apt/archives/*.deb"))
	if len(debs) == 0 {
		return fmt.Errorf("apt downloaded nothing for %s", strings.Join(pkgs, " "))
	}
	var index bytes.Buffer
	for _, deb := range debs {
		name := filepath.Base(deb)
		if err := os.Rename(deb, filepath.Join(repo, name)); err != nil {
			return err
		}
		control, err := exec.CommandContext(ctx, "dpkg-deb", "-f", filepath.Join(repo, name)).Output()
		if err != nil {
			return fmt.Errorf("dpkg-deb -f %s: %w", name, err)
		}
		data, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&index, "%s\nFilename: ./%s\nSize: %d\nSHA256: %s\n\n", bytes.TrimRight(control, "\n"), name, len(data), hex.EncodeToString(sum[:]))
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), index.Bytes(), 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(index.Bytes())
	release := fmt.Sprintf("Date: %s\nSHA256:\n %s %d Packages\n", time.Now().UTC().Format(time.RFC1123), hex.EncodeToString(sum[:]), index.Len())
	if suite != "" {
		release = "Suite: " + suite + "\nCodename: " + suite + "\n" + release
	}
	return os.WriteFile(filepath.Join(repo, "Release"), []byte(release), 0o644)
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Container is a booted tree with systemd as PID 1.
type Container struct {
	Name    string
	Dir     string // the tree on the host
	Leader  int    // the container's PID 1, as seen from the host
	Suite   string // the Debian release it runs
	cmd     *exec.Cmd
	done    chan error
	cgs     []string
	console string
	lock    *os.File // BootLock, released once the container is gone
}

// Boot unpacks image into a fresh folder and boots it. Everything (process,
// cgroups, folder) is removed at the test's cleanup, pass or fail.
func Boot(t testing.TB, image string) *Container {
	return BootSuite(t, image, "")
}

// BootSuite is Boot, with the Container saying which suite image holds.
func BootSuite(t testing.TB, image, suite string) *Container {
	t.Helper()
	lock, err := takeLock(BootLock, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	c, err := boot(image)
	if c != nil {
		c.Suite = suite
	}
	if c == nil {
		lock.Close()
	} else {
		c.lock = lock
		t.Cleanup(c.Stop)
	}
	if err != nil {
		if c != nil {
			t.Logf("console:\n%s", c.Console())
		}
		t.Fatal(err)
	}
	return c
}

// takeLock waits for an exclusive flock on path, saying so when another
// container holds it. Closing the file releases it.
func takeLock(path string, logf func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("boot lock: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		logf("nspawn: another test's container is running; waiting for it to stop (%s)", path)
		start := time.Now()
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		logf("nspawn: waited %s for %s", time.Since(start).Round(time.Second), path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("boot lock %s: %w", path, err)
	}
	return f, nil
}

func boot(image string) (*Container, error) {
	dir, err := os.MkdirTemp("", "mosqprov-nspawn-")
	if err != nil {
		return nil, err
	}
	c := &Container{Dir: dir, Name: "mosqprov-" + filepath.Base(dir)[len("mosqprov-nspawn-"):], done: make(chan error, 1)}
	c.Name = strings.ToLower(strings.ReplaceAll(c.Name, "_", "-"))
	if out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "-I", "zstd", "-C", dir, "-xpf", image).CombinedOutput(); err != nil {
		return c, fmt.Errorf("unpack %s: %v\n%s", image, err, out)
	}
	// Each container gets its own cgroup in both hierarchies; otherwise two
	// containers share /payload/system.slice/mosquitto.service (E2E.md).
	var enter []string
	for _, h := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"} {
		if _, err := os.Stat(h); err != nil {
			continue
		}
		cg := filepath.Join(h, c.Name)
		if err := os.Mkdir(cg, 0o755); err != nil {
			return c, fmt.Errorf("cgroup: %w", err)
		}
		c.cgs = append(c.cgs, cg)
		enter = append(enter, "echo $$ > "+filepath.Join(cg, "cgroup.procs"))
	}
	c.console = filepath.Join(dir + ".console")
	console, err := os.Create(c.console)
	if err != nil {
		return c, err
	}
	defer console.Close()
	script := strings.Join(append(enter, `exec systemd-nspawn -q -D "$1" -M "$2" -b --register=no --keep-unit --private-network --console=read-only`), " && ")
	c.cmd = exec.Command("sh", "-c", script, "sh", dir, c.Name)
	c.cmd.Stdout, c.cmd.Stderr = console, console
	// Pdeathsig: if the test binary dies without its cleanups (a go test
	// -timeout panic), nspawn still gets SIGTERM and halts the container.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		return c, err
	}
	go func() { c.done <- c.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for c.Leader == 0 {
		select {
		case err := <-c.done:
			c.cmd = nil
			return c, fmt.Errorf("systemd-nspawn exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return c, errors.New("container's systemd did not appear within 30s")
		}
		c.Leader = childNamed(c.cmd.Process.Pid, "systemd")
		if c.Leader == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// systemctl fails until the container's D-Bus socket exists; then --wait
	// blocks until boot is done. "degraded" is fine: a unit a container
	// can't run (it has no hardware) doesn't matter here.
	for {
		out, _ := c.Exec(ctx, "systemctl", "is-system-running", "--wait")
		s := strings.TrimSpace(out)
		if s == "running" || s == "degraded" {
			return c, nil
		}
		if ctx.Err() != nil {
			return c, fmt.Errorf("container's systemd is %q, not running", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// childNamed is the child of pid whose command name is name (0 if none).
func childNamed(pid int, name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(s[close+1:])
		if len(fields) < 2 || s[open+1:close] != name {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
			return p
		}
	}
	return 0
}

// Exec runs a command inside the container with a clean environment and
// returns its combined output.
func (c *Container) Exec(ctx context.Context, name string, args ...string) (string, error) {
	full := append([]string{"-t", strconv.Itoa(c.Leader), "-a", "--",
		"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		name}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s (in %s): %w", name, strings.Join(args, " "), c.Name, err)
	}
	return string(out), nil
}

// BuildMosqprov builds mosqprov into dir, static (CGO_ENABLED=0) so it runs
// whatever the tree's libc. Build it before Boot: the compile then doesn't
// hold BootLock while other tests wait for it.
func BuildMosqprov(ctx context.Context, dir string) (string, error) {
	// go test puts the go command it runs under first on PATH only
	// sometimes; /usr/local/go is where CI and the README install it.
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(dir, "mosqprov")
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/mosqprov/mosqprov/cmd/mosqprov")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build mosqprov: %v\n%s", err, out)
	}
	return bin, nil
}

// Install copies the host file src into the container at dst (an absolute
// path inside it) with mode.
func (c *Container) Install(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.Path(dst)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(c.Path(dst), data, mode)
}

// Path is where a container path lives on the host.
func (c *Container) Path(p string) string { return filepath.Join(c.Dir, p) }

// Console is what the container printed on its console so far.
func (c *Container) Console() string {
	data, _ := os.ReadFile(c.console)
	return tail(data, 40)
}

// Stop halts the container (SIGTERM to nspawn is a clean shutdown), then
// removes its cgroups and its tree.
func (c *Container) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
		c.cmd = nil
	}
	for _, cg := range c.cgs {
		removeCgroup(cg)
	}
	c.cgs = nil
	if c.Dir != "" {
		os.RemoveAll(c.Dir)
		os.Remove(c.console)
		c.Dir = ""
	}
	if c.lock != nil {
		c.lock.Close() // closing drops the flock: the next container may boot
		c.lock = nil
	}
}

// removeCgroup removes a cgroup folder and the empty ones the container's
// systemd left below it, deepest first (cgroupfs only lets rmdir remove
// them, one at a time).
func removeCgroup(cg string) {
	var dirs []string
	filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

// BootWithMosqprov is what every end-to-end test starts with: suite's
// cached tree (built first if missing), a static mosqprov built before the
// boot lock is taken, a booted container, and the binary at
// /usr/local/bin/mosqprov inside it.
func BootWithMosqprov(ctx context.Context, t testing.TB, suite string) *Container {
	t.Helper()
	image, err := Image(ctx, DefaultCacheDir, RecipeFor(suite), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := BuildMosqprov(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := BootSuite(t, image, suite)
	if err := c.Install(bin, "/usr/local/bin/mosqprov", 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// Unpack unpacks image into a fresh folder, removed at the test's cleanup,
// for a test that uses the tree as a chroot (SidRecipe) instead of booting
// it. Nothing is mounted into the folder: a command that needs /proc runs
// in its own mount namespace (Chroot), so removing the folder can never
// reach the host's /proc or /dev.
func Unpack(t testing.TB, image string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mosqprov-chroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "-I", "zstd", "-C", dir, "-xpf", image).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", image, err, out)
	}
	return dir
}

// Chroot is a command run in the tree dir (as root, with a clean
// environment), in a mount namespace of its own where /proc is mounted for
// it: the mount goes away with the command.
func Chroot(ctx context.Context, dir string, name string, args ...string) *exec.Cmd {
	script := `mount -t proc proc "$1/proc" && dir=$1 && shift && exec chroot "$dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"`
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", dir, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	return cmd
}

// BrokerTree is image unpacked once into cacheDir/brokers, shared by every
// test binary that runs the tree's mosquitto in a chroot
// (brokertest.Mosquitto, which mounts it read-only), with that mosquitto
// installed: sid's by its recipe; a suite whose recipe keeps mosquitto in
// LocalRepo (trixie) gets the packages of that repository installed with
// the tree's dpkg (a policy-rc.d forbids starting anything), so the tree's
// dpkg database says which version it has, as a Pi's does. version is
// that package version ("2.0.21-1").
func BrokerTree(ctx context.Context, cacheDir, image string) (dir, version string, err error) {
	// brokerTreeVersion changes when what BrokerTree does to a tree changes.
	const brokerTreeVersion = "2"
	image0 := strings.TrimSuffix(filepath.Base(image), ".tar.zst")
	key := image0 + "-" + brokerTreeVersion
	parent := filepath.Join(cacheDir, "brokers")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", "", err
	}
	lock, err := os.OpenFile(filepath.Join(parent, "."+key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", "", err
	}
	dir = filepath.Join(parent, key)
	const versionFile = "mosqprov-broker-version"
	if data, err := readVersionFile(filepath.Join(dir, versionFile)); err == nil {
		now := time.Now()
		os.Chtimes(dir, now, now) // in use: pruning keeps it
		return dir, string(data), nil
	}
	os.RemoveAll(dir) // an older layout, or one cut short
	tmp, err := os.MkdirTemp(parent, key+".tmp-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", "", err
	}
	if out, err := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-I", "zstd", "-C", tmp, "-xpf", image).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("unpack %s: %v\n%s", image, err, out)
	}
	if _, err := installedVersion(ctx, tmp, "mosquitto"); err != nil {
		debs, _ := filepath.Glob(filepath.Join(tmp, LocalRepo, "*.deb"))
		if len(debs) == 0 {
			return "", "", fmt.Errorf("%s: mosquitto is neither installed nor in %s", image, LocalRepo)
		}
		policy := filepath.Join(tmp, "usr/sbin/policy-rc.d")
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# mosqprov tests: never start a service in this tree\nexit 101\n"), 0o755); err != nil {
			return "", "", err
		}
		args := []string{"dpkg", "-i"}
		for _, d := range debs {
			args = append(args, strings.TrimPrefix(d, tmp))
		}
		cmd := Chroot(ctx, tmp, "env", append([]string{"DEBIAN_FRONTEND=noninteractive"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("dpkg -i in %s: %v\n%s", tmp, err, tail(out, 30))
		}
	}
	if version, err = installedVersion(ctx, tmp, "mosquitto"); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, versionFile), []byte(version), 0o644); err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", err
	}
	// Trees of this suite no test used for a week (an older recipe or
	// layout) go; a tree in use by another run is touched at every use.
	suite := image0[:strings.LastIndexByte(image0, '-')+1]
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		fi, err := e.Info()
		if err == nil && e.IsDir() && e.Name() != key && strings.HasPrefix(e.Name(), suite) && time.Since(fi.ModTime()) > 7*24*time.Hour {
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
	return dir, version, nil
}

// installedVersion is the version of pkg as the tree's dpkg has it installed.
func installedVersion(ctx context.Context, tree, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "--admindir="+filepath.Join(tree, "var/lib/dpkg"), "-W", "-f", "${db:Status-Status} ${Version}", pkg).Output()
	if err != nil {
		return "", err
	}
	status, v, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if status != "installed" || v == "" {
		return "", fmt.Errorf("%s is %s in %s", pkg, status, tree)
	}
	return v, nil
}

// readVersionFile reads the version an unpacked broker tree was marked
// with ("2.0.21-1"): 64 bytes at most, whatever the cache holds.
func readVersionFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64))
}
