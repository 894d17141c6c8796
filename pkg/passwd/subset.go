package passwd

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

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
// (path.PORT, marked by subsetMarker) from data, the password file just
// written, so a changed password or a removed user reaches the listeners
// limited to some users at once. Symlinks are left alone.
func refreshSubsets(sys system.System, path string, data []byte, attr system.Attr, res *Result) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := sys.ReadDir(dir)
	if err != nil {
		return nil
	}
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
		old, err := sys.ReadFile(p)
		if err != nil {
			continue
		}
		names, header, ok := parseSubset(old)
		if !ok {
			continue
		}
		act, err := sys.WriteFile(p, Subset(data, names, header), attr)
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		res.Add(system.NewChange("password file of listener "+port, p, act, ""))
		if act.Changed() {
			res.Needs(system.NeedReload)
		}
	}
	return nil
}
