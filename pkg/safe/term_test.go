package safe

import (
	"bytes"
	"testing"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                 "alice",
		"jörg-温度":               "jörg-温度",
		"\x1b]0;owned\x07":      `\x1b]0;owned\x07`,
		"evil\x1b[2K\rroot":     `evil\x1b[2K\x0droot`,
		"a\u202edcb":            `a\u202edcb`,
		"zero\u200bwidth\ufeff": `zero\u200bwidth\ufeff`,
		"csi\u009b31m":          `csi\x9b31m`,
		"line\u2028sep":         `line\u2028sep`,
		"bad\xffutf8":           `bad\xffutf8`,
		"tab\tnew\nline":        `tab\x09new\x0aline`,
		"del\x7f":               `del\x7f`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %s, want %s", in, got, want)
		}
	}
	if got, want := EscapeText("a\tb\n\x1b[31mc\n"), "a\tb\n\\x1b[31mc\n"; got != want {
		t.Errorf("EscapeText = %q, want %q", got, want)
	}
}

// A character split across writes is escaped (or kept) whole.
func TestWriterSplitRune(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	in := []byte("ok é \u202e \x1b!\n")
	for i := range in {
		if _, err := w.Write(in[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if got, want := buf.String(), "ok é \\u202e \\x1b!\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
