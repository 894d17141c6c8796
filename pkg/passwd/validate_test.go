package passwd

import (
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"alice", "zoë", "sensor-01.kitchen", "a b", "Ω"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                         "empty",
		"a:b":                      "':'",
		"a\nb":                     "control",
		"a\tb":                     "control",
		"a\x7fb":                   "control",
		" bob":                     "blank",
		"bob ":                     "blank",
		"bob\u00a0":                "blank",
		"\xff\xfe":                 "UTF-8",
		"#admin":                   "comment",
		strings.Repeat("a", 65536): "65536 bytes",
		// MQTT 3.1.1 §1.5.3: no U+0000, no surrogates, no noncharacters.
		"a\x00b":        "control",
		"\xed\xa0\x80x": "UTF-8", // U+D800, a surrogate, as UTF-8 bytes
		"bob\ufffe":     "the noncharacter U+FFFE",
		"bob\uffff":     "the noncharacter U+FFFF",
		"\ufdd0bob":     "the noncharacter U+FDD0",
		"bob\U0010ffff": "the noncharacter U+10FFFF",
		// Names that print as another.
		"admin\u200b":   "U+200B, an invisible formatting character",
		"\u202egnp.exe": "U+202E, an invisible formatting character",
		"a\u2066b":      "U+2066",
		"\ufeffbob":     "U+FEFF",
		"a\u2028b":      "U+2028",
	} {
		err := ValidateName(name)
		if err == nil || !errs.IsInput(err) || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "username: ") {
			t.Errorf("%.20q: %v, want an input error with %q", name, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%.20q: error is not one line", name)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, ok := range []string{"x", "with space", "colon:ok", "ünïcode", strings.Repeat("p", 65535)} {
		if err := ValidatePassword(ok); err != nil {
			t.Errorf("%.20q: %v", ok, err)
		}
	}
	for pw, want := range map[string]string{
		"":                         "empty; a user logs in with a password, so give it one that is not empty",
		"two\nlines":               "line break",
		"cr\r":                     "line break",
		"nul\x00":                  "NUL",
		strings.Repeat("p", 65536): "65536 bytes",
	} {
		err := ValidatePassword(pw)
		if err == nil || !errs.IsInput(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20q: %v, want %q", pw, err, want)
		}
		if err != nil && pw != "" && strings.Contains(err.Error(), pw) {
			t.Errorf("error echoes the password")
		}
	}
}
