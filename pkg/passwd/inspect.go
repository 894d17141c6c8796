package passwd

import (
	"fmt"
	"hash/maphash"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// FindingKind says what the broker does with a line.
type FindingKind string

const (
	// Ignored: the broker reads no user from the line.
	Ignored FindingKind = "ignored"
	// Rejected: the broker reads a user but drops it; nobody can log in as it.
	Rejected FindingKind = "rejected"
	// Plaintext: a password in clear; rejected too, and readable by anyone
	// who can read the file.
	Plaintext FindingKind = "plaintext"
	// Crypt: a crypt(3) SHA-512 line that looks like Mosquitto's $6$; rejected.
	Crypt FindingKind = "crypt"
	// Duplicate: a user on more than one line; the broker uses only the last.
	Duplicate FindingKind = "duplicate"
)

// Finding is a line the broker will ignore or reject. Messages never
// contain the line's hash or password.
type Finding struct {
	Line    int         `json:"line"`
	User    string      `json:"user,omitempty"`
	Kind    FindingKind `json:"kind"`
	Message string      `json:"message"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("line %d", f.Line)
	if f.User != "" {
		s += fmt.Sprintf(" (user %q)", f.User)
	}
	return s + ": " + f.Message
}

// Inspect lists the lines of a password file the broker will ignore or
// reject, in file order. It never fails: a file that doesn't parse is one
// finding.
func Inspect(data []byte) []Finding {
	f, err := Parse(data)
	if err != nil {
		return []Finding{{Line: 1, Kind: Ignored, Message: errs.Problem(err)}}
	}
	return f.Inspect()
}

// Inspect is Inspect on a parsed file.
func (f *File) Inspect() []Finding { return inspect(slices.Values(f.Lines), len(f.Lines)) }

// inspect is Inspect on a file's lines (n of them, a capacity hint).
func inspect(all iter.Seq[Line], n int) []Finding {
	ins := newInspector(n)
	for l := range all {
		ins.add(l)
	}
	return ins.findings(func() iter.Seq[Line] { return all })
}

// An inspector takes a file's lines one at a time (an edit gives it the
// lines it writes), keeping nothing of a line but its finding and, for a
// valid user line, a 32-bit hash of its name in an open-addressing table
// (4 to 8 bytes a line). Only when two valid lines' names hash alike (a
// duplicate, or about one 10,000-user file in a hundred by chance) are the
// lines walked again, to tell duplicates by name. A 10,000-user file is
// checked in 64 KB, in one walk.
type inspector struct {
	out   []Finding
	table []uint32 // name hashes, 0 for a free slot
	used  int
	seed  maphash.Seed
	// twice holds the hashes seen on more than one line.
	twice map[uint32]bool
}

// newInspector sizes the table for about n lines.
func newInspector(n int) *inspector {
	size := 64
	for size < n+n/2 {
		size *= 2
	}
	return &inspector{table: make([]uint32, size), seed: maphash.MakeSeed()}
}

func (in *inspector) hash(name string) uint32 {
	return uint32(maphash.String(in.seed, name)) | 1 // never 0, the free mark
}

// remember puts h in the table, growing it past two thirds full.
func (in *inspector) remember(h uint32) {
	if 3*(in.used+1) > 2*len(in.table) {
		old := in.table
		in.table, in.used = make([]uint32, 2*len(old)), 0
		for _, v := range old {
			if v != 0 {
				in.insert(v)
			}
		}
	}
	if !in.insert(h) {
		if in.twice == nil {
			in.twice = map[uint32]bool{}
		}
		in.twice[h] = true
	}
}

// insert reports false when h was there already.
func (in *inspector) insert(h uint32) bool {
	mask := uint32(len(in.table) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch in.table[i] {
		case 0:
			in.table[i] = h
			in.used++
			return true
		case h:
			return false
		}
	}
}

func (in *inspector) add(l Line) {
	if kind, msg, bad := problem(l); bad {
		f := Finding{Line: l.Num, Kind: kind, Message: msg}
		if l.Kind == Entry {
			f.User = strings.Clone(printable(l.Name))
		}
		in.out = append(in.out, f)
		return
	}
	if l.Kind == Entry {
		in.remember(in.hash(l.Name))
	}
}

// problem is what the broker does wrong with l, if anything: a line it
// reads no user from, or a user it drops. A comment, a blank line and a
// valid user line have none.
func problem(l Line) (kind FindingKind, msg string, bad bool) {
	switch l.Kind {
	case NoColon:
		return Ignored, "the broker reads no user from it (no name before a ':')", true
	case Comment, Blank:
		return "", "", false
	}
	switch {
	case strings.HasPrefix(trimC(l.Raw), "#"):
		return Rejected, "'#' after blanks does not make a comment: the broker reads this line as a user", true
	case l.Name == "":
		return Ignored, "no username before the ':'", true
	case len(l.Name) > maxField:
		return Ignored, fmt.Sprintf("username is %d bytes; the broker skips names over %d", len(l.Name), maxField), true
	case !utf8.ValidString(l.Name):
		return Rejected, "username is not valid UTF-8: no MQTT client can send it", true
	case !l.HasHash:
		return Ignored, "nothing after the ':': the broker skips the line", true
	}
	if err := checkHash(l.Hash); err != nil {
		kind := Rejected
		switch {
		case !strings.HasPrefix(l.Hash, "$") && l.Hash != "":
			kind = Plaintext
		case cryptSHA512().MatchString(l.Hash):
			kind = Crypt
		}
		return kind, errs.Problem(err), true
	}
	return "", "", false
}

// renumber moves the findings so far to the line numbers number gives.
func (in *inspector) renumber(number func(int) int) {
	for i := range in.out {
		in.out[i].Line = number(in.out[i].Line)
	}
}

// findings are the lines' findings in file order; again walks the same
// lines once more when names may repeat.
func (in *inspector) findings(again func() iter.Seq[Line]) []Finding {
	out := in.out
	if in.twice != nil {
		// The valid lines whose names hash as another's, in file order: a
		// name's lines other than its last valid one are duplicates.
		var valid []Line
		for l := range again() {
			if l.Kind == Entry && in.twice[in.hash(l.Name)] && !isProblem(l) {
				valid = append(valid, Line{Num: l.Num, Name: strings.Clone(l.Name)})
			}
		}
		last := map[string]int{}
		for _, l := range valid {
			last[l.Name] = l.Num
		}
		for _, l := range valid {
			if n := last[l.Name]; n != l.Num {
				out = append(out, Finding{Line: l.Num, User: printable(l.Name), Kind: Duplicate, Message: fmt.Sprintf("user appears again on line %d; Mosquitto 2.0 uses only the last valid line", n)})
			}
		}
	}
	// A line has one finding at most: file order is line order.
	slices.SortStableFunc(out, func(a, b Finding) int { return a.Line - b.Line })
	return out
}

func isProblem(l Line) bool { _, _, bad := problem(l); return bad }

// printable makes a name from a file safe to print on one line.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
