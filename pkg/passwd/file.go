package passwd

import (
	"bytes"
	"fmt"
	"iter"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// LineKind is how the broker reads one line of a password file.
type LineKind int

const (
	// Comment: starts with '#' in the first column; the broker skips it.
	Comment LineKind = iota
	// Blank: only white space; the broker skips it.
	Blank
	// NoColon: text without ':'; the broker skips it silently.
	NoColon
	// Entry: the broker reads a user from it (and may still reject it).
	Entry
)

// Line is one line of a password file, kept byte for byte.
type Line struct {
	// Raw is the line exactly as in the file, with its line ending.
	Raw  string
	Kind LineKind
	// Num is the 1-based line number.
	Num int
	// Name is the username the broker reads from an Entry line.
	Name string
	// Hash is the hash text the broker reads from an Entry line; HasHash is
	// false when the line has nothing after the name.
	Hash    string
	HasHash bool
	// off is where the line starts in the file.
	off int64
}

// File is a parsed password file: every line kept, so writing it back
// changes only what was edited.
type File struct {
	Lines []Line
}

// Parse splits data into lines and reads each the way Mosquitto 2.0.11 does
// (src/security_default.c pwfile__parse): a line starting with '#' or
// without ':' is skipped; otherwise strtok(":") gives the name and the hash,
// so empty fields are skipped and anything after a second ':' is ignored,
// and both are trimmed of white space (isspace, which includes "\r").
// Only a file that is not text at all (a NUL byte) is an error.
func Parse(data []byte) (*File, error) {
	if err := checkText(data); err != nil {
		return nil, err
	}
	// One string for the whole file: each line's Raw, Name and Hash are
	// slices of it, not copies (a 10,000-user file parses in one allocation
	// per line, for the Line slice's growth only).
	text := string(data)
	f := &File{Lines: make([]Line, 0, strings.Count(text, "\n")+1)}
	for l := range lines(text) {
		f.Lines = append(f.Lines, l)
	}
	return f, nil
}

// checkText refuses data that is not a text file.
func checkText(data []byte) error {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return errs.Invalid("password file", "line %d holds a NUL byte: not a text password file", bytes.Count(data[:i], []byte("\n"))+1)
	}
	return nil
}

// lines yields text's lines as Parse reads them, each a view of text: an
// edit walks a large file line by line without a Line slice for it.
func lines(text string) iter.Seq[Line] {
	return func(yield func(Line) bool) {
		rest := text
		for num := 1; len(rest) > 0; num++ {
			n := strings.IndexByte(rest, '\n') + 1
			if n == 0 {
				n = len(rest)
			}
			l := readLine(rest[:n], num)
			l.off = int64(len(text) - len(rest))
			if !yield(l) {
				return
			}
			rest = rest[n:]
		}
	}
}

func readLine(raw string, num int) Line {
	l := Line{Raw: raw, Num: num}
	switch {
	case strings.HasPrefix(raw, "#"):
		l.Kind = Comment
	case !strings.Contains(raw, ":"):
		l.Kind = NoColon
		if trimC(raw) == "" {
			l.Kind = Blank
		}
	default:
		l.Kind = Entry
		name, rest, ok := strtok(raw)
		// A line of only ':' has no strtok token at all; the broker skips it.
		if !ok {
			l.Kind = NoColon
			break
		}
		l.Name = trimC(name)
		if hash, _, ok := strtok(rest); ok {
			l.Hash, l.HasHash = trimC(hash), true
		}
	}
	return l
}

// strtok is C's strtok(s, ":"): it skips leading ':', and the token runs
// to the next ':' or the end; ok is false when only ':' are left.
func strtok(s string) (token, rest string, ok bool) {
	s = strings.TrimLeft(s, ":")
	if s == "" {
		return "", "", false
	}
	token, rest, _ = strings.Cut(s, ":")
	return token, rest, true
}

// trimC trims what C's isspace() matches, as the broker's misc__trimblanks does.
func trimC(s string) string {
	for len(s) > 0 && isSpaceC(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpaceC(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpaceC(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// Bytes is the file's content.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	n := 0
	for _, l := range f.Lines {
		n += len(l.Raw)
	}
	b.Grow(n)
	for _, l := range f.Lines {
		b.WriteString(l.Raw)
	}
	return b.Bytes()
}

// Entries are the lines the broker reads as users, valid or not.
func (f *File) Entries() []Line {
	var out []Line
	for _, l := range f.Lines {
		if l.Kind == Entry {
			out = append(out, l)
		}
	}
	return out
}

// Lookup returns the line the broker uses for name: with duplicates, 2.0.11
// keeps the last one with a valid hash (its uthash table finds the most
// recently added entry and drops entries it can't decode; checked with
// mosquitto_pub against a file holding one user twice). Without a valid
// line it returns the last line for name.
func (f *File) Lookup(name string) (Line, bool) {
	var p pick
	for _, l := range f.Lines {
		if l.Kind == Entry && l.Name == name {
			p.add(l)
		}
	}
	return p.line()
}

// pick finds, among one user's lines in file order, the one the broker
// uses (Lookup), and counts them.
type pick struct {
	last, lastValid Line
	n               int
	valid           bool
}

func (p *pick) add(l Line) {
	p.n++
	p.last = l
	if validHash(l.Hash) {
		p.lastValid, p.valid = l, true
	}
}

func (p *pick) line() (Line, bool) {
	if p.valid {
		return p.lastValid, true
	}
	return p.last, p.n > 0
}

func validHash(s string) bool { return checkHash(s) == nil }

// User is one user as `user list` shows it.
type User struct {
	Name       string `json:"name"`
	Line       int    `json:"line"`
	Hash       string `json:"hash"`                 // pbkdf2, sha512, or "invalid"
	Iterations int    `json:"iterations,omitempty"` // pbkdf2 only
	Problem    string `json:"problem,omitempty"`
}

// Users lists every user line in file order.
func (f *File) Users() []User {
	var out []User
	for _, l := range f.Entries() {
		u := User{Name: l.Name, Line: l.Num}
		h, err := ParseHash(l.Hash)
		if err == nil {
			u.Hash, u.Iterations = string(h.Algo), h.Iterations
		} else {
			u.Hash = "invalid"
			u.Problem = errs.Problem(err)
		}
		out = append(out, u)
	}
	return out
}

// entryLine is the line mosqprov writes for a user.
func entryLine(name, hash string) string { return fmt.Sprintf("%s:%s\n", name, hash) }
