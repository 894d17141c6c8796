// Package apt reads the broker's package state from dpkg and installs it
// with apt-get, through the System's Runner so tests record the commands and
// --dry-run prints them.
package apt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// Broker is the package that ships the broker; Packages is what install
// makes sure of (the clients are what `verify` and people test with).
const Broker = "mosquitto"

// Packages are installed together.
var Packages = []string{Broker, "mosquitto-clients"}

// Package is one package's state in the dpkg database.
type Package struct {
	Name string `json:"name"`
	// Status is dpkg's: installed, not-installed, config-files, half-installed...
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
}

// Installed reports whether the package is fully installed.
func (p Package) Installed() bool { return p.Status == "installed" }

// Version is an upstream mosquitto version. 2.0 and 2.1 differ in what the
// tools must write (mosquitto_passwd iterations, O_NOFOLLOW on password and
// ACL files, --test-config), so callers compare with AtLeast.
type Version struct {
	Major, Minor, Patch int
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Series is "2.0" or "2.1".
func (v Version) Series() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// ParseVersion reads the upstream part of a Debian version:
// "2.0.11-1.2+deb12u1" and "1:2.1.2-1~bpo12+1" give 2.0.11 and 2.1.2.
func ParseVersion(debian string) (Version, error) {
	s := debian
	if _, after, ok := strings.Cut(s, ":"); ok {
		s = after
	}
	if i := strings.IndexAny(s, "-~+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR[.PATCH]", debian)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("version %q: %q is not a number", debian, p)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

// dbDir is dpkg's database on the target; under a --root it is the root's own.
const dbDir = "/var/lib/dpkg"

// Query reads names' states with dpkg-query (read only, so dry runs run it).
// Under a --root other than "/" it reads that root's dpkg database.
func Query(ctx context.Context, sys system.System, names ...string) ([]Package, error) {
	args := []string{"-W", "-f", "${Package}\t${db:Status-Status}\t${Version}\n"}
	if sys.Root() != "/" {
		args = append([]string{"--admindir=" + sys.HostPath(dbDir)}, args...)
	}
	out, err := sys.Run(ctx, system.Cmd{Name: "dpkg-query", Args: append(args, names...), ReadOnly: true})
	// dpkg-query exits 1 when a name is unknown to dpkg and still prints the
	// others; anything else (no database) is an error.
	var ee *system.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Code == 1 && strings.Contains(ee.Stderr, "no packages found")) {
		return nil, fmt.Errorf("read package state: %w", err)
	}
	found := map[string]Package{}
	sc := bufio.NewScanner(bytes.NewReader(out.Stdout))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			continue
		}
		// Multi-arch systems may list name:arch; the first one wins.
		name, _, _ := strings.Cut(f[0], ":")
		if _, seen := found[name]; !seen {
			found[name] = Package{Name: name, Status: f[1], Version: f[2]}
		}
	}
	pkgs := make([]Package, 0, len(names))
	for _, n := range names {
		p, ok := found[n]
		if !ok {
			p = Package{Name: n, Status: "not-installed"}
		}
		if !p.Installed() {
			p.Version = ""
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// BrokerVersion is the installed broker's version on sys, for decisions that
// depend on it (2.0 vs 2.1).
func BrokerVersion(ctx context.Context, sys system.System) (Version, error) {
	pkgs, err := Query(ctx, sys, Broker)
	if err != nil {
		return Version{}, err
	}
	if !pkgs[0].Installed() {
		return Version{}, fmt.Errorf("%s is not installed (run mosqprov install)", Broker)
	}
	return ParseVersion(pkgs[0].Version)
}

// Result is what Ensure found and did.
type Result struct {
	// The converge contract every step reports (the packages' lines; a
	// package needs nothing of a running broker: the install starts it).
	// Left out of the json report, which lists the changes itself.
	system.Result `json:"-"`
	Packages      []Package `json:"packages"`
	// Broker is the broker's upstream version ("2.0.11"); in a dry run
	// where it isn't installed, the version apt would install.
	Broker string `json:"broker_version,omitempty"`
	Series string `json:"series,omitempty"`
}

// Installer makes sure the broker's packages are installed.
type Installer struct {
	Sys system.System
	// LockTimeout bounds the wait for another package manager (a fresh Pi
	// runs unattended-upgrades right after boot) to release dpkg's lock.
	LockTimeout time.Duration
	// Progress receives apt's output while it runs (nil: not shown).
	Progress io.Writer
	// Notify shows a message to the person waiting (nil: not shown).
	Notify func(format string, args ...any)
	// LockHolder reports who holds the package manager's lock; it defaults
	// to probing dpkg's and apt's lock files on Sys.
	LockHolder func() (Holder, bool)
	// Poll is the pause between two looks at the lock.
	Poll time.Duration
	// Sleep waits d or until ctx ends (tests advance a fake clock).
	Sleep func(ctx context.Context, d time.Duration) error
	// StampPaths are looked at, newest wins, to tell when the package lists
	// were last refreshed.
	StampPaths []string
	// MaxListAge is how old the lists may be before install refreshes them.
	MaxListAge time.Duration
}

// NewInstaller returns an Installer with the defaults.
func NewInstaller(sys system.System) *Installer {
	in := &Installer{
		Sys:         sys,
		LockTimeout: 10 * time.Minute,
		Poll:        2 * time.Second,
		Sleep:       sleep,
		// Debian's apt touches update-success-stamp after every successful
		// update (apt.conf.d/15update-stamp); the lists folder's mtime is
		// the fallback where that hook is missing. InRelease mtimes are the
		// server's Last-Modified, not when we fetched them.
		StampPaths: []string{"/var/lib/apt/periodic/update-success-stamp", "/var/lib/apt/lists"},
		MaxListAge: 24 * time.Hour,
	}
	in.LockHolder = func() (Holder, bool) { return ProbeLocks(sys) }
	return in
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (in *Installer) notify(format string, args ...any) {
	if in.Notify != nil {
		in.Notify(format, args...)
	}
}

// Ensure installs whichever of Packages is missing. Installed packages run
// nothing and are reported unchanged with their version. On an error the
// result still holds the commands that ran before it.
func (in *Installer) Ensure(ctx context.Context) (Result, error) {
	var res Result
	changes, err := in.ensure(ctx, &res)
	res.Changes = changes
	return res, err
}

// ensure fills res's packages and versions and returns the report's lines.
func (in *Installer) ensure(ctx context.Context, res *Result) ([]system.Change, error) {
	pkgs, err := Query(ctx, in.Sys, Packages...)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, p := range pkgs {
		if !p.Installed() {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) == 0 {
		var changes []system.Change
		for _, p := range pkgs {
			changes = append(changes, system.NewChange("package "+p.Name, "", system.Noop, p.Version))
		}
		*res = in.result(pkgs, pkgs[0].Version)
		return changes, nil
	}
	if root := in.Sys.Root(); root != "/" {
		// apt-get -o Dir=ROOT would run the packages' maintainer scripts
		// (adduser, systemctl) on this host, not in the image.
		res.Packages = pkgs
		return nil, fmt.Errorf("%s not installed under %s; mosqprov installs packages only on the running system (apt under another root would run their maintainer scripts on this host): run `chroot %s apt-get install -y %s`",
			strings.Join(missing, " and "), root, root, strings.Join(Packages, " "))
	}

	var changes []system.Change
	deadline := in.Sys.Now().Add(in.LockTimeout)
	candidates, err := in.candidates(ctx, missing)
	if err != nil {
		return nil, err
	}
	unknown := unknownOf(missing, candidates)
	age, fresh := in.listsAge()
	if len(unknown) > 0 || !fresh {
		why := "package lists are " + age
		if len(unknown) > 0 {
			why = "apt doesn't know " + strings.Join(unknown, ", ") + " yet"
		}
		c, err := in.apt(ctx, deadline, "update")
		if err != nil {
			return changes, err
		}
		changes = append(changes, system.NewChange("package lists", "", system.Run, commandLine(c)+"; "+why))
		if len(unknown) > 0 && !in.Sys.IsDryRun() {
			if candidates, err = in.candidates(ctx, missing); err != nil {
				return changes, err
			}
			if u := unknownOf(missing, candidates); len(u) > 0 {
				return changes, fmt.Errorf("no installation candidate for %s in the apt sources (/etc/apt/sources.list*); on Raspberry Pi OS and Debian it is in the main archive", strings.Join(u, ", "))
			}
		}
	}
	c, err := in.apt(ctx, deadline, "install", missing...)
	if err != nil {
		return changes, err
	}
	changes = append(changes, system.NewChange("packages", "", system.Run, commandLine(c)))

	if in.Sys.IsDryRun() {
		for i, p := range pkgs {
			if !p.Installed() {
				cand := candidates[p.Name]
				if cand == "" {
					cand = "known after apt-get update"
				}
				changes = append(changes, system.NewChange("package "+p.Name, "", system.Create, "candidate "+cand))
				pkgs[i].Version = candidates[p.Name]
			} else {
				changes = append(changes, system.NewChange("package "+p.Name, "", system.Noop, p.Version))
			}
		}
		*res = in.result(pkgs, pkgs[0].Version)
		return changes, nil
	}
	after, err := Query(ctx, in.Sys, Packages...)
	if err != nil {
		return changes, err
	}
	for i, p := range after {
		if !p.Installed() {
			res.Packages = after
			return changes, fmt.Errorf("apt-get install finished but %s is %s", p.Name, p.Status)
		}
		action := system.Noop
		if !pkgs[i].Installed() {
			action = system.Create
		}
		changes = append(changes, system.NewChange("package "+p.Name, "", action, p.Version))
	}
	*res = in.result(after, after[0].Version)
	return changes, nil
}

// commandLine is cmd as a person would type it, its environment first: a
// dry run's "would run" line can be pasted as is, and apt-get without
// DEBIAN_FRONTEND=noninteractive would stop at debconf questions.
func commandLine(cmd system.Cmd) string {
	return strings.Join(append(append([]string(nil), cmd.Env...), cmd.String()), " ")
}

func (in *Installer) result(pkgs []Package, brokerVersion string) Result {
	r := Result{Packages: pkgs}
	if v, err := ParseVersion(brokerVersion); err == nil {
		r.Broker, r.Series = v.String(), v.Series()
	}
	return r
}

func unknownOf(names []string, candidates map[string]string) []string {
	var u []string
	for _, n := range names {
		if candidates[n] == "" {
			u = append(u, n)
		}
	}
	return u
}

// candidates asks apt which version it would install of each name ("" when
// it doesn't know the package).
func (in *Installer) candidates(ctx context.Context, names []string) (map[string]string, error) {
	// apt-cache run as root writes its binary caches
	// (/var/cache/apt/pkgcache.bin, srcpkgcache.bin) when they are missing,
	// as on a cleaned image; empty cache names keep it in memory, so plan,
	// --dry-run and a setup answered "no" write nothing.
	args := append(append([]string{"policy"}, names...), "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=")
	out, err := in.Sys.Run(ctx, system.Cmd{Name: "apt-cache", Args: args, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("ask apt for %s: %w", strings.Join(names, ", "), err)
	}
	return parsePolicy(out.Stdout), nil
}

// parsePolicy reads `apt-cache policy` output: a "NAME:" line at column 0
// per package apt knows, then "  Candidate: VERSION" ("(none)" when no
// source offers it). Unknown packages print nothing.
func parsePolicy(out []byte) map[string]string {
	cands := map[string]string{}
	var current string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line != "" && line[0] != ' ' && strings.HasSuffix(line, ":") {
			current = strings.TrimSuffix(line, ":")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate:"); ok && current != "" {
			if v = strings.TrimSpace(v); v != "(none)" {
				cands[current] = v
			}
		}
	}
	return cands
}

// listsAge says how old the package lists are and whether that is recent enough.
func (in *Installer) listsAge() (string, bool) {
	var newest time.Time
	for _, p := range in.StampPaths {
		if fi, err := in.Sys.Stat(p); err == nil && fi.ModTime.After(newest) {
			newest = fi.ModTime
		}
	}
	if newest.IsZero() {
		return "missing", false
	}
	age := in.Sys.Now().Sub(newest)
	return "from " + age.Round(time.Minute).String() + " ago", age < in.MaxListAge
}

// apt runs apt-get VERB, first waiting (until deadline) for any other
// package manager to finish. apt is also given the remaining time as
// DPkg::Lock::Timeout, so a lock taken between our look and apt's start is
// waited for too; if apt still reports a busy lock it is retried.
func (in *Installer) apt(ctx context.Context, deadline time.Time, verb string, pkgs ...string) (system.Cmd, error) {
	for {
		if !in.Sys.IsDryRun() {
			if err := in.waitLock(ctx, deadline); err != nil {
				return system.Cmd{}, err
			}
		}
		remaining := int(math.Ceil(deadline.Sub(in.Sys.Now()).Seconds()))
		if remaining < 0 {
			remaining = 0
		}
		args := []string{verb}
		if verb == "install" {
			// --force-confold keeps a conffile the person edited (left over
			// from an earlier, removed install) instead of stopping at a question.
			args = append(args, "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")
		}
		args = append(args, "-o", "DPkg::Lock::Timeout="+strconv.Itoa(remaining))
		cmd := system.Cmd{Name: "apt-get", Args: append(args, pkgs...), Env: []string{"DEBIAN_FRONTEND=noninteractive"}, Stream: in.Progress}
		_, err := in.Sys.Run(ctx, cmd)
		if err == nil {
			return cmd, nil
		}
		var ee *system.ExitError
		if !errors.As(err, &ee) || !lockBusy(ee.Stderr) || !in.Sys.Now().Before(deadline) {
			return cmd, fmt.Errorf("apt-get %s: %w", verb, err)
		}
		if err := in.Sleep(ctx, in.Poll); err != nil {
			return cmd, err
		}
	}
}

// lockBusy recognises apt's "someone else holds the lock" failures (apt 2.x).
func lockBusy(stderr string) bool {
	return strings.Contains(stderr, "Could not get lock") || strings.Contains(stderr, "Unable to acquire the dpkg frontend lock") ||
		strings.Contains(stderr, "Unable to lock directory")
}

// waitLock waits until no other process holds the package manager's locks,
// saying once what it waits for.
func (in *Installer) waitLock(ctx context.Context, deadline time.Time) error {
	announced := false
	for {
		h, held := in.LockHolder()
		if !held {
			if announced {
				in.notify("apt: lock released, continuing")
			}
			return nil
		}
		if !announced {
			in.notify("apt: waiting for %s, held by %s (up to %s; --lock-timeout)", h.Path, h, in.LockTimeout)
			announced = true
		}
		if !in.Sys.Now().Before(deadline) {
			return fmt.Errorf("apt: %s is still held by %s after %s (--lock-timeout): another package manager is running (unattended-upgrades, right after a Pi boots); run again when it is done, or with a longer --lock-timeout", h.Path, h, in.LockTimeout)
		}
		if err := in.Sleep(ctx, in.Poll); err != nil {
			return err
		}
	}
}
