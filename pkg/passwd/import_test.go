package passwd

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mosqprov/mosqprov/pkg/errs"
)

func TestParseImport(t *testing.T) {
	got, err := ParseImport("users.txt", []byte("# people\nalice:correct horse\r\n\nbob:b0b:with colon\nzoë:pässwörd ✓"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Desired{{Name: "alice", Password: "correct horse"}, {Name: "bob", Password: "b0b:with colon"}, {Name: "zoë", Password: "pässwörd ✓"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatal(d)
	}
	if got, err := ParseImport("x", readFixture(t, "passwords.txt")); err != nil || len(got) != 6 {
		t.Fatalf("fixture: %d %v", len(got), err)
	}
	for in, msg := range map[string]string{
		"alice:ok\nbobnopass\n":     "users.txt line 2: no ':'",
		"alice:ok\nalice:secret2\n": "users.txt line 2: user \"alice\" again (first on line 1)",
		"alice:\n":                  "users.txt line 1: password empty",
		":secret3\n":                "users.txt line 1: username empty",
		" alice:secret4\n":          "blank",
		"al\x01ice:secret5\n":       "control",
		"alice:sec\x00ret6\n":       "NUL",
		"ok:x\n\xff:secret7\n":      "users.txt line 2: username",
	} {
		_, err := ParseImport("users.txt", []byte(in))
		if err == nil || !errs.IsInput(err) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", in, err, msg)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: error shows the password: %v", in, err)
		}
	}
}
