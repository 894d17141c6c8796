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

// inspect is Inspect on a file's n lines, which it walks twice; it keeps
// nothing per line, so a 10,000-user file is checked in a few pages of
// memory.
func inspect(all iter.Seq[Line], n int) []Finding {
	var out []Finding
	maybe := repeated(all, n)
	// The valid lines of the names in maybe, in file order: a name's lines
	// other than its last valid one are duplicates.
	var valid []Line
	for l := range all {
		switch l.Kind {
		case NoColon:
			out = append(out, Finding{Line: l.Num, Kind: Ignored, Message: "the broker reads no user from it (no name before a ':')"})
			continue
		case Comment, Blank:
			continue
		}
		add := func(kind FindingKind, msg string) {
			out = append(out, Finding{Line: l.Num, User: printable(l.Name), Kind: kind, Message: msg})
		}
		trimmed := trimC(l.Raw)
		switch {
		case strings.HasPrefix(trimmed, "#"):
			add(Rejected, "'#' after blanks does not make a comment: the broker reads this line as a user")
			continue
		case l.Name == "":
			add(Ignored, "no username before the ':'")
			continue
		case len(l.Name) > maxField:
			add(Ignored, fmt.Sprintf("username is %d bytes; the broker skips names over %d", len(l.Name), maxField))
			continue
		case !utf8.ValidString(l.Name):
			add(Rejected, "username is not valid UTF-8: no MQTT client can send it")
			continue
		case !l.HasHash:
			add(Ignored, "nothing after the ':': the broker skips the line")
			continue
		}
		if err := checkHash(l.Hash); err != nil {
			kind := Rejected
			switch {
			case !strings.HasPrefix(l.Hash, "$") && l.Hash != "":
				kind = Plaintext
			case cryptSHA512().MatchString(l.Hash):
				kind = Crypt
			}
			add(kind, errs.Problem(err))
			continue
		}
		if maybe[l.Name] {
			valid = append(valid, l)
		}
	}
	if len(valid) == 0 {
		return out
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
	// A line has one finding at most: file order is line order.
	slices.SortStableFunc(out, func(a, b Finding) int { return a.Line - b.Line })
	return out
}

// repeated returns a set holding at least every name on more than one of
// the n lines. A bit per hash of a name, 16 bits per line, tells most
// names apart; only the few whose hash was seen before go into the set,
// where a map of every name would cost a 10,000-user file about a
// megabyte on each edit.
func repeated(all iter.Seq[Line], n int) map[string]bool {
	size := uint64(1024)
	for size < uint64(n)*16 {
		size *= 2
	}
	seen := make([]uint64, size/64)
	seed := maphash.MakeSeed()
	maybe := map[string]bool{}
	for l := range all {
		if l.Kind != Entry {
			continue
		}
		h := maphash.String(seed, l.Name) & (size - 1)
		if seen[h/64]&(1<<(h%64)) != 0 {
			maybe[l.Name] = true
		}
		seen[h/64] |= 1 << (h % 64)
	}
	return maybe
}

// printable makes a name from a file safe to print on one line.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
