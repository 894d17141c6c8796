package passwd

import (
	"bufio"
	"bytes"
	"strings"
)

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
