package passwd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Desired is a user the file must hold, with either a plaintext Password
// (hashed here, or kept when the stored hash already verifies it) or a
// precomputed Hash in a format the broker reads.
type Desired struct {
	Name     string
	Password string
	Hash     string
}

// Options tune Converge.
type Options struct {
	// Prune removes every user not in the desired list.
	Prune bool
	// Remove lists users to delete.
	Remove []string
	// Algo for new hashes (default PBKDF2). When set, a stored hash of
	// another type is replaced even if it verifies.
	Algo Algo
	// Iterations for new PBKDF2 hashes (default DefaultIterations). When set,
	// a stored PBKDF2 hash with another count is replaced even if it verifies.
	Iterations int
	// SkipUnmanaged leaves out of Result.Users the file's users that are
	// neither desired nor removed: a change to one user of a file of
	// thousands then costs no entry per other user (`user add` prints only
	// the user it names).
	SkipUnmanaged bool
}

// Status is what happened to one user.
type Status string

const (
	Added     Status = "added"
	Updated   Status = "updated"
	Unchanged Status = "unchanged"
	Removed   Status = "removed"
	// Absent: asked to remove a user the file doesn't hold.
	Absent Status = "absent"
	// Unmanaged: in the file, neither desired nor removed; left as is.
	Unmanaged Status = "unmanaged"
)

// UserResult is one user's outcome.
type UserResult struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Result is what Converge did (or, on a dry-run System, would do): the
// converge contract (the file's line for a report, system.NeedReload when
// the file changed, since the broker re-reads the password file on SIGHUP,
// and warnings) and each user's outcome.
type Result struct {
	system.Result
	Path   string        `json:"path"`
	Action system.Action `json:"action"`
	Users  []UserResult  `json:"users"`
	// Findings are the lines of the resulting file the broker ignores or rejects.
	Findings []Finding `json:"findings,omitempty"`
	// others is set when the file holds users left as they are, listed in
	// Users or not (Options.SkipUnmanaged).
	others bool
}

// Count is how many users ended with status s.
func (r Result) Count(s Status) int {
	n := 0
	for _, u := range r.Users {
		if u.Status == s {
			n++
		}
	}
	return n
}

// Converge makes the password file at path hold want (and not the users in
// opts.Remove), keeping every other line byte for byte. It validates all
// input before touching anything, takes sys.Lock(path), reads the file under
// the lock and writes it once, atomically, with the broker's owner and mode,
// and only when something differs: a user whose stored hash already
// verifies its password keeps its line, salt and all.
func Converge(sys system.System, path string, want []Desired, opts Options) (Result, error) {
	res := Result{Path: path, Action: system.Noop, Users: []UserResult{}}
	if err := checkInput(want, &opts); err != nil {
		return res, err
	}
	attr, fallback := layout.BrokerSecret(sys)
	if fallback != "" {
		res.WarnNoAccount(path, layout.BrokerUser, fallback)
	}
	if err := canGive(sys, path, attr); err != nil {
		return res, err
	}
	if dir := filepath.Dir(path); !layout.Exists(sys, dir) {
		if len(want) == 0 {
			// Only removals, from a file that can't exist: nothing to do,
			// and no folder to create for it.
			res.Users = edit(scanned{}, 0, nil, nil, nil, opts, newInspector(0)).users
			return res, nil
		}
		if _, err := sys.EnsureDir(dir, system.Attr{Mode: 0o755}); err != nil {
			return res, err
		}
	}
	if why := system.WritableByOthers(sys, filepath.Dir(path)); why != "" {
		res.Warn("password file %s: %s", path, why)
	}
	unlock, err := sys.Lock(path)
	if err != nil {
		return res, err
	}
	defer unlock()

	src, err := sys.Open(path)
	existed := err == nil
	if errors.Is(err, fs.ErrNotExist) {
		src = emptySource{}
	} else if err != nil {
		return res, fmt.Errorf("read password file %s: %w", path, err)
	}
	// One walk reads the file: it checks that it is text, keeps the lines
	// of the users named and inspects the others. A user line is about 120
	// bytes: the inspector's table is sized for every line at once, as
	// growing it would touch twice the memory.
	old := &walk{src: src}
	ins := newInspector(int(src.Size() / 120))
	sc, err := old.scan(want, opts, ins)
	if errs.IsInput(err) {
		return res, errs.Invalid(path, "%s", errs.Problem(err))
	}
	if err != nil {
		return res, fmt.Errorf("read password file %s: %w", path, err)
	}
	hashes, statuses := resolve(sc.picks, want, opts)
	e := edit(sc, src.Size(), want, hashes, statuses, opts, ins)
	res.Users, res.others = e.users, e.others
	if !existed && e.size == 0 {
		return res, nil // nothing to hold: don't create an empty file
	}
	action, err := sys.WriteFrom(path, e.size, func(w io.Writer) error {
		return e.write(src, src.Size(), w, old.buf)
	}, attr)
	if err != nil {
		return res, err // it names the file and what failed
	}
	res.Action = action
	var again error
	res.Findings = ins.findings(func() iter.Seq[Line] {
		// Two lines' names hash alike: read the file as written to see
		// whether they are one name.
		now, err := sys.Open(path)
		if err != nil {
			again = err
			return func(func(Line) bool) {}
		}
		w := &walk{src: now}
		return func(yield func(Line) bool) {
			w.lines()(yield)
			again = w.err
		}
	})
	if again != nil {
		return res, fmt.Errorf("read password file %s: %w", path, again)
	}
	detail := summary(res)
	if action == system.Update && !e.changed {
		detail = "owner and mode set to " + describeAttr(attr)
	}
	res.Add(system.NewChange("password file", path, action, detail))
	if action.Changed() {
		res.Needs(system.NeedReload)
	}
	// The listeners limited to some users (broker.yaml listeners[].users)
	// follow the password file at once.
	if err := refreshSubsets(sys, path, attr, &res); err != nil {
		return res, err
	}
	return res, nil
}

func describeAttr(a system.Attr) string {
	owner := a.User
	if owner == "" {
		owner = "the caller"
	} else if a.Group != "" {
		owner += ":" + a.Group
	}
	return fmt.Sprintf("%s %04o", owner, a.Mode.Perm())
}

func summary(r Result) string {
	var parts []string
	for _, s := range []Status{Added, Updated, Removed, Unchanged} {
		if n := r.Count(s); n > 0 {
			if len(r.Users) == 1 && !r.others {
				return r.Users[0].Name + " " + string(s)
			}
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, ", ")
}

// checkInput validates everything before the file is touched.
func checkInput(want []Desired, opts *Options) error {
	if opts.Algo != "" {
		if _, err := ParseAlgo(string(opts.Algo)); err != nil {
			return err
		}
	}
	if opts.Iterations != 0 {
		if err := checkIterations(opts.Iterations); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, d := range want {
		if err := ValidateName(d.Name); err != nil {
			return err
		}
		if seen[d.Name] {
			return errs.Invalid("username", "%q is given twice", d.Name)
		}
		seen[d.Name] = true
		switch {
		case d.Hash != "" && d.Password != "":
			return errs.Invalid("user "+d.Name, "give a password or a hash, not both")
		case d.Hash != "":
			if _, err := ParseHash(d.Hash); err != nil {
				return errs.Invalid("user "+d.Name+" hash", "%s", errs.Problem(err))
			}
		default:
			if err := ValidatePassword(d.Password); err != nil {
				return errs.Invalid("user "+d.Name+" password", "%s", errs.Problem(err))
			}
		}
	}
	for _, name := range opts.Remove {
		// A name already in the file can be removed whatever it holds.
		if err := ValidateLineName(name); err != nil {
			return err
		}
		if seen[name] {
			return errs.Invalid("username", "%q is both wanted and removed", name)
		}
	}
	return nil
}

// resolve finds each desired user's hash: the stored one when it verifies
// the password (and matches opts), else a new one, from each user's lines
// in the file (scan). The PBKDF2 work, both verifying and hashing, runs on
// every core.
func resolve(picks map[string]*pick, want []Desired, opts Options) (hashes []string, statuses []UserResult) {
	hashes = make([]string, len(want))
	statuses = make([]UserResult, len(want))
	work := func(i int) {
		d := want[i]
		st := UserResult{Name: d.Name}
		p := picks[d.Name]
		line, exists := p.line()
		switch {
		case d.Hash != "":
			hashes[i] = d.Hash
			if exists && line.Hash == d.Hash {
				st.Status = Unchanged
			}
		case exists && keep(line.Hash, d.Password, opts):
			hashes[i] = line.Hash
			st.Status = Unchanged
		default:
			// Inputs were validated, so New can't fail.
			h, _ := New(d.Password, orDefault(opts.Algo), opts.Iterations)
			hashes[i] = h.String()
		}
		switch {
		case !exists:
			st.Status = Added
		case st.Status == "":
			st.Status, st.Detail = Updated, "new password hash"
		case p.n > 1:
			st.Status, st.Detail = Updated, "duplicate lines merged"
		}
		statuses[i] = st
	}
	parallel(len(want), work)
	return hashes, statuses
}

func orDefault(a Algo) Algo {
	if a == "" {
		return PBKDF2
	}
	return a
}

// keep reports whether a stored hash can stay for password.
func keep(stored, password string, opts Options) bool {
	h, err := ParseHash(stored)
	if err != nil {
		return false
	}
	if opts.Algo != "" && h.Algo != opts.Algo {
		return false
	}
	if opts.Iterations != 0 && h.Algo == PBKDF2 && h.Iterations != opts.Iterations {
		return false
	}
	return h.Verify(password)
}

// parallel runs fn(0..n-1) on GOMAXPROCS workers.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// canGive refuses, before any folder is created, a run that could not give
// the password file its owner: only root can hand a file to the broker's
// user, so a non-root `user add` would otherwise make the folder and then
// fail at the write.
func canGive(sys system.System, path string, attr system.Attr) error {
	me := sys.CurrentAccount()
	if me.UID == 0 || attr.User == "" || attr.User == me.Name {
		return nil
	}
	if a, err := sys.LookupUser(attr.User); err == nil && a.UID == me.UID {
		return nil
	}
	return fmt.Errorf("password file %s: only root can give it to user %s, and this is %s; run mosqprov as root (sudo)", path, attr.User, me.Name)
}
