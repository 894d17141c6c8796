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
func (f *File) Inspect() []Finding { return inspect(slices.Values(f.Lines)) }

// inspect is Inspect on a file's lines, which it walks three times; it
// keeps nothing per line, so a 10,000-user file is checked in a few pages
// of memory.
func inspect(all iter.Seq[Line]) []Finding {
	var out []Finding
	// last is the last line with a valid hash of each name on more than
	// one line (a line of a name found once is its own last).
	last := repeated(all)
	for l := range all {
		if n, ok := last[l.Name]; ok && l.Kind == Entry && checkHash(l.Hash) == nil && l.Num > n {
			last[l.Name] = l.Num
		}
	}
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
		if n, ok := last[l.Name]; ok && n != 0 && n != l.Num {
			add(Duplicate, fmt.Sprintf("user appears again on line %d; Mosquitto 2.0 uses only the last valid line", n))
		}
	}
	return out
}

// repeated returns a map holding (with 0) at least every name on more than
// one entry line. A bit per hash of a name, 16 bits per line, tells most
// names apart; only the few whose hash was seen before go into the map,
// where a map of every name would cost a 10,000-user file about a
// megabyte on each edit.
func repeated(all iter.Seq[Line]) map[string]int {
	n := 0
	for range all {
		n++
	}
	size := uint64(1024)
	for size < uint64(n)*16 {
		size *= 2
	}
	seen := make([]uint64, size/64)
	seed := maphash.MakeSeed()
	maybe := map[string]int{}
	for l := range all {
		if l.Kind != Entry {
			continue
		}
		h := maphash.String(seed, l.Name) & (size - 1)
		if seen[h/64]&(1<<(h%64)) != 0 {
			maybe[l.Name] = 0
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
