package brokertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/nspawn"
)

// Mosquitto is one build of the broker a test runs: the host's own
// (Debian 12's 2.0.11 on CI), or another Debian release's, run from that
// release's tree (internal/nspawn) in a chroot on the host's loopback.
// Every folder a test makes (Dir, Root, t.TempDir) is under os.TempDir(),
// which a chroot broker sees at the same path, with the host's accounts
// (so the mosquitto user it drops to is the host's, owner of the files
// mosqprov wrote under a test root). The tree itself is read-only to it.
type Mosquitto struct {
	// Suite is "host", or the Debian release of Tree ("trixie", "sid").
	Suite string
	// Version is the broker's upstream version, "2.0.21".
	Version string
	// Tree is the unpacked tree, "" for the host's broker.
	Tree string
}

// String names the broker in subtests and messages: "2.1.2-sid".
func (m Mosquitto) String() string { return m.Version + "-" + m.Suite }

// AtLeast reports whether the broker is major.minor or later.
func (m Mosquitto) AtLeast(major, minor int) bool {
	f := strings.SplitN(m.Version, ".", 3)
	if len(f) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(f[0])
	mi, _ := strconv.Atoi(f[1])
	return ma > major || ma == major && mi >= minor
}

// File is the host path of the broker's own file p ("/etc/mosquitto/mosquitto.conf").
func (m Mosquitto) File(p string) string {
	if m.Tree == "" {
		return p
	}
	return filepath.Join(m.Tree, p)
}

// chrootScript runs a command in tree ($1): a mount namespace of its own,
// the tree bound read-only onto itself (several test binaries share one
// tree), /proc and a fresh /run, the host's temporary folder ($2) at the
// same path, the host's accounts and resolver. Mounts go away with the
// command; nothing is ever mounted in the tree outside its namespace.
const chrootScript = `set -e
t=$1; tmp=$2; shift 2
mount --bind "$t" "$t"
mount -o remount,bind,ro "$t"
mount -t proc proc "$t/proc"
mount -t tmpfs -o mode=0755 tmpfs "$t/run"
mount --bind "$tmp" "$t$tmp"
for f in /etc/passwd /etc/group /etc/resolv.conf; do
  [ -f "$f" ] && [ -f "$t$f" ] && mount --bind "$f" "$t$f"
done
exec chroot "$t" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"`

// Command is the broker's binary (mosquitto, or its tools such as
// mosquitto_passwd) with args: in the tree's chroot for another release.
// The process is the command itself (exec all the way), so signals reach
// it.
func (m Mosquitto) Command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	if m.Tree == "" {
		bin, err := lookPath(name)
		if err != nil {
			return nil, err
		}
		return exec.CommandContext(ctx, bin, args...), nil
	}
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(m.Tree, tmp)); err != nil {
		return nil, fmt.Errorf("the %s tree has no %s for the test folders: %w", m.Suite, tmp, err)
	}
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", chrootScript, "sh", m.Tree, tmp, name}, args...)...)
	// If the test binary dies without its cleanups, the broker goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// Start is the package's Start with this broker.
func (m Mosquitto) Start(t testing.TB, dir, conf string, ports ...int) *Broker {
	t.Helper()
	b, err := m.StartErr(dir, conf, ports...)
	if err != nil {
		t.Fatalf("mosquitto %s: %v", m, err)
	}
	t.Cleanup(b.Stop)
	return b
}

// StartErr is the package's StartErr with this broker.
func (m Mosquitto) StartErr(dir, conf string, ports ...int) (*Broker, error) {
	b := &Broker{Conf: filepath.Join(dir, "test-broker.conf"), Log: filepath.Join(dir, "test-broker.log"), done: make(chan error, 1)}
	full := conf + "\nlog_dest file " + b.Log + "\nlog_type all\n"
	if err := os.WriteFile(b.Conf, []byte(full), 0o644); err != nil {
		return nil, err
	}
	// The log file is opened after the broker drops to its user.
	if f, err := os.OpenFile(b.Log, os.O_CREATE|os.O_WRONLY, 0o666); err == nil {
		f.Close()
		os.Chmod(b.Log, 0o666)
	}
	if err := b.run(m, ports); err != nil {
		return nil, err
	}
	return b, nil
}

// StartFile is the package's StartFile with this broker.
func (m Mosquitto) StartFile(t testing.TB, conf, log string, ports ...int) *Broker {
	t.Helper()
	b := &Broker{Conf: conf, Log: log, done: make(chan error, 1)}
	if err := b.run(m, ports); err != nil {
		t.Fatalf("mosquitto %s: %v", m, err)
	}
	t.Cleanup(b.Stop)
	return b
}

// hostBroker is the host's mosquitto, as dpkg says.
var hostBroker = sync.OnceValues(func() (Mosquitto, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "mosquitto").Output()
	if err != nil {
		return Mosquitto{}, fmt.Errorf("dpkg-query mosquitto: %v (apt-get install -y mosquitto)", err)
	}
	return Mosquitto{Suite: "host", Version: upstream(string(out))}, nil
})

// Host is the host's mosquitto, the one Start runs.
func Host(t testing.TB) Mosquitto {
	t.Helper()
	Require(t)
	m, err := hostBroker()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// upstream is the upstream part of a Debian version: "2.0.21-1" is 2.0.21.
func upstream(v string) string {
	v = strings.TrimSpace(v)
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndexByte(v, '-'); i > 0 {
		v = v[:i]
	}
	return v
}

// OtherSuites are the Debian releases whose brokers Versions runs besides
// the host's: trixie's 2.0.21 (today's Raspberry Pi OS) and sid's 2.1.
var OtherSuites = []string{"trixie", "sid"}

// Versions is every broker the tests run a check against: the host's
// (2.0.11 on CI's Debian 12), then trixie's and sid's from the trees
// internal/nspawn builds and caches. Each tree is unpacked once into the
// cache (Tree) and shared, read-only, by every test binary. Where trees
// can't be had (not root, no debootstrap), only the host's is returned and
// the test says so loudly; with CI=true that is a failure.
func Versions(t testing.TB) []Mosquitto {
	t.Helper()
	all := []Mosquitto{Host(t)}
	if !othersPossible(t) {
		return all
	}
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(OtherSuites))
		got  = make([]Mosquitto, len(OtherSuites))
	)
	for i, suite := range OtherSuites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = suiteBroker(suite, t.Logf)
		}()
	}
	wg.Wait()
	for i := range OtherSuites {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		all = append(all, got[i])
	}
	return all
}

// othersPossible reports whether the other suites' trees can be had here,
// saying why not (a failure with CI=true) when they can't.
func othersPossible(t testing.TB) bool {
	t.Helper()
	why := nspawn.Missing()
	if why == "" {
		return true
	}
	msg := "CHECKS AGAINST MOSQUITTO 2.0.21 AND 2.1 NOT RUN: " + why
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so this is a failure")
	}
	fmt.Fprintln(os.Stderr, "*** "+msg)
	t.Log(msg)
	return false
}

var suiteBrokers = struct {
	sync.Mutex
	m map[string]Mosquitto
}{m: map[string]Mosquitto{}}

// suiteBroker is suite's broker, its tree unpacked on first use in this
// test binary (or found unpacked by an earlier one).
func suiteBroker(suite string, logf func(string, ...any)) (Mosquitto, error) {
	suiteBrokers.Lock()
	m, ok := suiteBrokers.m[suite]
	suiteBrokers.Unlock()
	if ok {
		return m, nil
	}
	// A tree still being built (a cold cache: .ci/run builds them in the
	// background) is waited for.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	recipe := nspawn.RecipeFor(suite)
	if suite == "sid" {
		recipe = nspawn.SidRecipe()
	}
	image, err := nspawn.Image(ctx, nspawn.DefaultCacheDir, recipe, logf)
	if err != nil {
		return Mosquitto{}, err
	}
	tree, version, err := nspawn.BrokerTree(ctx, nspawn.DefaultCacheDir, image)
	if err != nil {
		return Mosquitto{}, err
	}
	m = Mosquitto{Suite: suite, Version: upstream(version), Tree: tree}
	suiteBrokers.Lock()
	suiteBrokers.m[suite] = m
	suiteBrokers.Unlock()
	return m, nil
}

// Each runs check as a subtest per broker of Versions, named after it
// ("2.0.21-trixie"), all at once: each check starts its own brokers on
// ports of its own, and spends its time waiting on them and on clients,
// so they run together even beyond go test's -parallel (GOMAXPROCS, 2 on
// CI), which t.Parallel would wait for. The host's check starts at once,
// each other one as soon as its tree is there (on a cold CI machine the
// trees may still be building).
func Each(t *testing.T, check func(t *testing.T, m Mosquitto)) {
	t.Helper()
	host := Host(t)
	others := othersPossible(t) // before any subtest: it may fail t
	var wg sync.WaitGroup
	run := func(m Mosquitto) {
		t.Run(m.String(), func(t *testing.T) { check(t, m) })
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(host)
	}()
	if others {
		for _, suite := range OtherSuites {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := suiteBroker(suite, t.Logf)
				if err != nil {
					t.Errorf("mosquitto of %s: %v", suite, err)
					return
				}
				run(m)
			}()
		}
	}
	wg.Wait()
}
