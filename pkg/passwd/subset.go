package passwd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// subsetMarker starts the first line of a listener's password file; the
// names that follow say whose lines it holds, so every change of the
// password file (apply, `user add`, `user passwd`, `user rm`) can rebuild it.
const subsetMarker = "# mosqprov listener users:"

// maxFileSize caps a listener password file read back: a few hundred bytes
// a user, so anything this size is not one of ours.
const maxFileSize = 16 << 20

// Subset is the password file data keeping only the lines of names, under
// a comment header (the broker ignores lines starting with '#'). A
// listener that only some users may log in on gets such a file: mosquitto
// has no other way to limit a user to listeners (2.0: per_listener_settings
// with a password_file per listener; 2.1: a password-file plugin per
// listener).
func Subset(data []byte, names []string, header string) []byte {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out bytes.Buffer
	out.WriteString(subsetMarker + " " + strings.Join(names, " ") + "\n")
	for _, h := range strings.Split(header, "\n") {
		out.WriteString("# " + h + "\n")
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		// The broker trims blanks around the user name (REFERENCE.md).
		if ok && want[strings.TrimSpace(name)] {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

// ValidateListenerUser checks that name can be limited to a listener: its
// file's first line lists the names separated by blanks, so a name with a
// blank in it would come back as two.
func ValidateListenerUser(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if strings.ContainsFunc(name, unicode.IsSpace) {
		return errs.Invalid("username", "%q contains a blank; a user limited to a listener can't (use another name)", name)
	}
	return nil
}

// parseSubset reads the names and header of a listener's password file;
// ok is false for any other file.
func parseSubset(data []byte) (names []string, header string, ok bool) {
	first, rest, _ := strings.Cut(string(data), "\n")
	if !strings.HasPrefix(first, subsetMarker) {
		return nil, "", false
	}
	var h []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "# ") {
			break
		}
		h = append(h, strings.TrimPrefix(line, "# "))
	}
	return strings.Fields(strings.TrimPrefix(first, subsetMarker)), strings.Join(h, "\n"), true
}

// refreshSubsets rebuilds every listener password file beside path
// (path.PORT, marked by subsetMarker) from the password file just
// written, so a changed password or a removed user reaches the listeners
// limited to some users at once. Symlinks are left alone.
func refreshSubsets(sys system.System, path string, attr system.Attr, res *Result) error {
	base := filepath.Base(path)
	var data []byte
	for _, p := range subsetFiles(sys, path) {
		if data == nil {
			// Read whole only when a listener needs its part of it.
			var err error
			if data, err = sys.ReadFile(path); err != nil {
				return fmt.Errorf("read password file %s: %w", path, err)
			}
		}
		old, err := sys.ReadFile(p)
		if err != nil {
			continue
		}
		names, header, _ := parseSubset(old)
		act, err := sys.WriteFile(p, Subset(data, names, header), attr)
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		res.Add(system.NewChange("password file of listener "+strings.TrimPrefix(filepath.Base(p), base+"."), p, act, ""))
		if act.Changed() {
			res.Needs(system.NeedReload)
		}
	}
	return nil
}

// ListenerFile is the password file of one listener limited to some users
// (broker.yaml's listeners[].users, conf write's --listener ...,user=NAME).
type ListenerFile struct {
	Port int
	// Path is conf.ListenerPasswordFile(main, Port).
	Path   string
	Users  []string
	Header string
}

// WriteListenerFiles writes each listener file from the password file
// main: its users' lines under a marked header. The files are broker
// secrets like the password file (attr); a change needs a reload. Write
// them before the configuration names them: the broker does not start
// with a password_file it can't open.
func WriteListenerFiles(sys system.System, main string, files []ListenerFile, attr system.Attr) (system.Result, error) {
	var res system.Result
	if len(files) == 0 {
		return res, nil
	}
	unlock, err := lockBeside(sys, main)
	if err != nil {
		return res, err
	}
	defer unlock()
	data, err := sys.ReadFile(main)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", main, err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			have[strings.TrimSpace(name)] = true
		}
	}
	for _, f := range files {
		for _, u := range f.Users {
			if !have[u] {
				res.Warn("%s: user %q is not in %s, so nobody logs in as %q on port %d until it is added (`mosqprov user add`)", f.Path, u, main, u, f.Port)
			}
		}
		act, err := sys.WriteFile(f.Path, Subset(data, f.Users, f.Header), attr)
		if err != nil {
			return res, fmt.Errorf("write %s: %w", f.Path, err)
		}
		res.Add(system.NewChange(fmt.Sprintf("password file of listener %d", f.Port), f.Path, act, ""))
		if act.Changed() {
			res.Needs(system.NeedReload)
		}
	}
	return res, nil
}

// RemoveListenerFiles removes the listener password files beside main that
// mosqprov wrote (a regular file named main.PORT whose first line is its
// marker) and that keep does not list: a listener whose users: was dropped,
// or that is gone, leaves no copy of those users' hashes behind. A
// symlink, a folder or a file without the marker is never touched (not
// ours). Remove it after the configuration stops naming it, so the broker
// never has to start on a password_file that is gone. Removing a file the
// configuration no longer names needs nothing of the broker: the change of
// the configuration itself says what it needs.
func RemoveListenerFiles(sys system.System, main string, keep []string) (system.Result, error) {
	var res system.Result
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	unlock, err := lockBeside(sys, main)
	if err != nil {
		return res, err
	}
	defer unlock()
	for _, p := range subsetFiles(sys, main) {
		if kept[p] {
			continue
		}
		port := strings.TrimPrefix(filepath.Base(p), filepath.Base(main)+".")
		act, err := sys.Remove(p)
		if err != nil {
			return res, err
		}
		res.Add(system.NewChange("password file of listener "+port, p, act, "no listener limits its users to it any more"))
	}
	return res, nil
}

// subsetFiles lists the listener password files mosqprov wrote beside
// main: regular files named main.PORT (digits) whose first line is
// subsetMarker. Symlinks and other files are left out.
func subsetFiles(sys system.System, main string) []string {
	dir, base := filepath.Dir(main), filepath.Base(main)
	entries, err := sys.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		port, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || port == "" || strings.Trim(port, "0123456789") != "" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := sys.Stat(p)
		if err != nil || fi.Symlink || fi.IsDir || fi.Size > maxFileSize {
			continue
		}
		data, err := sys.ReadFile(p)
		if err != nil {
			continue
		}
		if _, _, ok := parseSubset(data); ok {
			out = append(out, p)
		}
	}
	return out
}

// lockBeside takes the lock `user add` and apply take on the password
// file main (its folder), so a listener file is never rebuilt from a
// password file another mosqprov is rewriting. No folder, nothing to lock.
func lockBeside(sys system.System, main string) (func(), error) {
	if _, err := sys.Stat(filepath.Dir(main)); errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	return sys.Lock(main)
}
