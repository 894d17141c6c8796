// Package safe makes text safe to print on a terminal. mosqprov prints
// names it did not choose (users and topics from files anyone with write
// access could have edited, subjects of imported certificates, journal
// lines quoting what clients sent): a control character among them could
// retitle the terminal, move the cursor or hide the rest of a line, and a
// bidirectional override or zero-width character can make one name look
// like another. Everything mosqprov prints as text goes through here.
package safe

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Unsafe reports whether r must not reach a terminal as it is: C0 and C1
// control characters (ESC starts every terminal escape), Unicode format
// characters (bidirectional overrides and isolates, zero-width spaces and
// joiners, the byte order mark) and the line and paragraph separators.
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

// Escape writes every unsafe character of s, and every byte that is not
// UTF-8, as a Go escape (\x1b, \u202e), so s prints as one line that shows
// what is really there. Safe text is returned unchanged.
func Escape(s string) string {
	return escape(s, "")
}

// EscapeText is Escape for text of several lines: newlines and tabs are
// kept, everything else unsafe is escaped.
func EscapeText(s string) string {
	return escape(s, "\n\t")
}

func escape(s, keep string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return (Unsafe(r) || r == utf8.RuneError) && !strings.ContainsRune(keep, r) })
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for s = s[i:]; s != ""; {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case strings.ContainsRune(keep, r) || !Unsafe(r):
			b.WriteString(s[:n])
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		s = s[n:]
	}
	return b.String()
}

// Writer escapes text written to it with EscapeText before passing it on,
// holding back a character split across two writes until it is whole.
type Writer struct {
	w    io.Writer
	tail []byte
}

// NewWriter returns a Writer printing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (t *Writer) Write(p []byte) (int, error) {
	data := append(t.tail, p...)
	t.tail = nil
	// Keep an incomplete UTF-8 sequence at the end for the next write.
	for k := 1; k < utf8.UTFMax && k <= len(data); k++ {
		if c := data[len(data)-k]; utf8.RuneStart(c) {
			if !utf8.FullRune(data[len(data)-k:]) {
				t.tail = append([]byte(nil), data[len(data)-k:]...)
				data = data[:len(data)-k]
			}
			break
		}
	}
	if _, err := io.WriteString(t.w, EscapeText(string(data))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is held back (an incomplete character, escaped).
func (t *Writer) Flush() error {
	if len(t.tail) == 0 {
		return nil
	}
	_, err := io.WriteString(t.w, EscapeText(string(t.tail)))
	t.tail = nil
	return err
}
