package passwd

import (
	"errors"
	"fmt"
	"io/fs"
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
			_, res.Users = edit(&File{}, nil, nil, nil, opts)
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

	old, err := sys.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read password file %s: %w", path, err)
	}
	f, err := Parse(old)
	if err != nil {
		return res, errs.Invalid(path, "%s", errs.Problem(err))
	}

	hashes, statuses := resolve(f, want, opts)
	out, users := edit(f, want, hashes, statuses, opts)
	res.Users = users
	if !existed && len(out.Lines) == 0 {
		return res, nil // nothing to hold: don't create an empty file
	}
	data := out.Bytes()
	action, err := sys.WriteFile(path, data, attr)
	if err != nil {
		return res, err // it names the file and what failed
	}
	res.Action = action
	res.Findings = out.Inspect()
	detail := summary(res)
	if action == system.Update && string(old) == string(data) {
		detail = "owner and mode set to " + describeAttr(attr)
	}
	res.Add(system.NewChange("password file", path, action, detail))
	if action.Changed() {
		res.Needs(system.NeedReload)
	}
	// The listeners limited to some users (broker.yaml listeners[].users)
	// follow the password file at once.
	if err := refreshSubsets(sys, path, data, attr, &res); err != nil {
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
			if len(r.Users) == 1 {
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
// the password (and matches opts), else a new one. The PBKDF2 work, both
// verifying and hashing, runs on every core.
func resolve(f *File, want []Desired, opts Options) (hashes []string, statuses []UserResult) {
	hashes = make([]string, len(want))
	statuses = make([]UserResult, len(want))
	// How many lines each desired user has (only theirs: the file may hold
	// thousands of others).
	count := make(map[string]int, len(want))
	for _, d := range want {
		count[d.Name] = 0
	}
	for _, l := range f.Lines {
		if n, ok := count[l.Name]; ok && l.Kind == Entry {
			count[l.Name] = n + 1
		}
	}
	work := func(i int) {
		d := want[i]
		st := UserResult{Name: d.Name}
		line, exists := f.Lookup(d.Name)
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
		case count[d.Name] > 1:
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

// edit builds the new file: a desired user's first line is replaced in
// place (an unchanged one is kept byte for byte), its other lines are
// dropped, removed (and, with Prune, unwanted) users' lines are dropped,
// new users are appended, and every other line stays as it was.
func edit(f *File, want []Desired, hashes []string, statuses []UserResult, opts Options) (*File, []UserResult) {
	index := map[string]int{}
	for i, d := range want {
		index[d.Name] = i
	}
	remove := map[string]bool{}
	for _, n := range opts.Remove {
		remove[n] = true
	}
	out := &File{Lines: make([]Line, 0, len(f.Lines)+len(want))}
	placed := make(map[string]bool, len(want))
	removed := map[string]bool{}
	var unmanaged []string
	seen := make(map[string]bool, len(f.Lines))
	for _, l := range f.Lines {
		if l.Kind != Entry {
			out.Lines = append(out.Lines, l)
			continue
		}
		i, wanted := index[l.Name]
		switch {
		case wanted && placed[l.Name]:
			// a duplicate: drop it
		case wanted:
			placed[l.Name] = true
			if statuses[i].Status == Unchanged {
				out.Lines = append(out.Lines, l)
			} else {
				out.Lines = append(out.Lines, Line{Raw: entryLine(l.Name, hashes[i]), Kind: Entry, Name: l.Name, Hash: hashes[i], HasHash: true})
			}
		case remove[l.Name] || opts.Prune:
			removed[l.Name] = true
		default:
			if !seen[l.Name] {
				seen[l.Name] = true
				unmanaged = append(unmanaged, l.Name)
			}
			out.Lines = append(out.Lines, l)
		}
	}
	for i, d := range want {
		if placed[d.Name] {
			continue
		}
		if n := len(out.Lines); n > 0 && !strings.HasSuffix(out.Lines[n-1].Raw, "\n") {
			out.Lines[n-1].Raw += "\n"
		}
		out.Lines = append(out.Lines, Line{Raw: entryLine(d.Name, hashes[i]), Kind: Entry, Name: d.Name, Hash: hashes[i], HasHash: true})
	}
	for i := range out.Lines {
		out.Lines[i].Num = i + 1
	}
	users := append([]UserResult(nil), statuses...)
	for _, n := range opts.Remove {
		if removed[n] {
			users = append(users, UserResult{Name: n, Status: Removed})
		} else {
			users = append(users, UserResult{Name: n, Status: Absent, Detail: "not in the file"})
		}
	}
	if opts.Prune {
		for _, l := range f.Entries() {
			if _, wanted := index[l.Name]; !wanted && !remove[l.Name] && removed[l.Name] {
				users = append(users, UserResult{Name: l.Name, Status: Removed, Detail: "not in the desired list"})
				removed[l.Name] = false // report each name once
			}
		}
	}
	for _, n := range unmanaged {
		users = append(users, UserResult{Name: n, Status: Unmanaged})
	}
	return out, users
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
