package passwd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKeepsEveryByte(t *testing.T) {
	for _, name := range []string{"messy.passwd", "mosquitto_passwd-pbkdf2.passwd", "crypt-sha512.passwd"} {
		data := readFixture(t, name)
		f, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Bytes(); string(got) != string(data) {
			t.Errorf("%s: round trip differs:\n%s", name, cmp.Diff(string(data), string(got)))
		}
	}
}

func TestParseReadsLikeTheBroker(t *testing.T) {
	f, err := Parse(readFixture(t, "messy.passwd"))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Num     int
		Kind    LineKind
		Name    string
		HasHash bool
	}
	var got []row
	for _, l := range f.Lines {
		got = append(got, row{l.Num, l.Kind, l.Name, l.HasHash})
	}
	want := []row{
		{1, Comment, "", false},
		{2, Comment, "", false},
		{3, Blank, "", false},
		{4, Entry, "alice", true},
		{5, NoColon, "", false},
		{6, Entry, "bob", true}, // blanks and CRLF trimmed, as the broker does
		{7, Entry, "plain", true},
		{8, Entry, "crypt", true},
		{9, Entry, "# indented", true},
		{10, Entry, "nohash", true}, // "\n" is a token, trimmed to an empty hash
		{11, Entry, "carol", true},
		{12, Entry, "carol", true},
		{13, Entry, "old", true},
		{14, Blank, "", false},
		{15, Entry, "last", true}, // no final newline
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatal(d)
	}
	if l, _ := f.Lookup("bob"); !strings.HasPrefix(l.Hash, "$6$") || strings.ContainsAny(l.Hash, " \r\n") {
		t.Errorf("bob's hash %q", l.Hash)
	}
	// strtok skips empty fields and stops at the next ':'.
	for raw, want := range map[string][2]string{
		"::dan::$6$x:extra\n": {"dan", "$6$x"},
		" eve :\t$7$y \n":     {"eve", "$7$y"},
		":::\n":               {"", ""},
	} {
		l := readLine(raw, 1)
		if l.Name != want[0] || l.Hash != want[1] {
			t.Errorf("%q: name %q hash %q, want %q", raw, l.Name, l.Hash, want)
		}
	}
	if l := readLine(":::", 1); l.Kind != NoColon {
		t.Errorf("a line of colons without newline: kind %v", l.Kind)
	}
}

func TestLookupUsesLastValidLine(t *testing.T) {
	data := string(readFixture(t, "messy.passwd"))
	f, _ := Parse([]byte(data))
	l, ok := f.Lookup("carol")
	if !ok || l.Num != 12 {
		t.Fatalf("carol: line %d", l.Num)
	}
	f, _ = Parse([]byte(data + "\ncarol:broken\n"))
	if l, _ := f.Lookup("carol"); l.Num != 12 {
		t.Fatalf("a broken later line must not hide the valid one: line %d", l.Num)
	}
}

func TestParseRejectsBinary(t *testing.T) {
	_, err := Parse([]byte("alice:x\nbob\x00:y\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v", err)
	}
}

func TestInspect(t *testing.T) {
	got := Inspect(readFixture(t, "messy.passwd"))
	type row struct {
		Line int
		User string
		Kind FindingKind
	}
	var rows []row
	for _, f := range got {
		rows = append(rows, row{f.Line, f.User, f.Kind})
		if strings.Contains(f.Message, "hunter2") || strings.Contains(f.Message, "laGn2JkF") {
			t.Errorf("finding leaks the line: %s", f)
		}
	}
	want := []row{
		{5, "", Ignored},
		{7, "plain", Plaintext},
		{8, "crypt", Crypt},
		{9, "# indented", Rejected},
		{10, "nohash", Rejected},
		{11, "carol", Duplicate},
		{13, "old", Rejected},
	}
	if d := cmp.Diff(want, rows); d != "" {
		t.Fatal(d)
	}
	for _, clean := range []string{"mosquitto_passwd-pbkdf2.passwd", "mosquitto_passwd-sha512.passwd"} {
		if f := Inspect(readFixture(t, clean)); len(f) != 0 {
			t.Errorf("%s: %v", clean, f)
		}
	}
	if f := Inspect(readFixture(t, "crypt-sha512.passwd")); len(f) != 1 || f[0].Kind != Crypt {
		t.Errorf("crypt fixture: %v", f)
	}
}

func TestUsers(t *testing.T) {
	f, _ := Parse(readFixture(t, "messy.passwd"))
	users := f.Users()
	byName := map[string]User{}
	for _, u := range users {
		byName[u.Name] = u
	}
	if u := byName["alice"]; u.Hash != "pbkdf2" || u.Iterations != 101 {
		t.Errorf("alice %+v", u)
	}
	if u := byName["bob"]; u.Hash != "sha512" || u.Iterations != 0 {
		t.Errorf("bob %+v", u)
	}
	if u := byName["crypt"]; u.Hash != "invalid" || !strings.Contains(u.Problem, "crypt(3)") {
		t.Errorf("crypt %+v", u)
	}
}

// In a file of thousands, where the duplicate search keeps a bit per name
// hash and exact names only for the few that share one, every duplicate is
// found, at its line, and no other line is called one: the same findings a
// map of every name gives.
func TestInspectFindsEveryDuplicateInALargeFile(t *testing.T) {
	valid, _ := New("x", PBKDF2, 1)
	var b strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&b, "user%05d:%s\n", i, valid)
	}
	// user00007 twice valid; user00042 valid then broken; user19999 three times.
	fmt.Fprintf(&b, "user00007:%s\nuser00042:$7$nope\nuser19999:%s\nuser19999:%s\n", valid, valid, valid)
	f, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fd := range f.Inspect() {
		if fd.Kind == Duplicate {
			got = append(got, fmt.Sprintf("%d %s: %s", fd.Line, fd.User, fd.Message))
		}
	}
	// The reference: the last valid line of every name, from a map of all.
	last := map[string]int{}
	for _, l := range f.Lines {
		if l.Kind == Entry && validHash(l.Hash) {
			last[l.Name] = l.Num
		}
	}
	var want []string
	for _, l := range f.Lines {
		if l.Kind == Entry && validHash(l.Hash) && last[l.Name] != l.Num {
			want = append(want, fmt.Sprintf("%d %s: user appears again on line %d; Mosquitto 2.0 uses only the last valid line", l.Num, l.Name, last[l.Name]))
		}
	}
	if len(want) != 3 {
		t.Fatalf("reference found %d duplicates, the file has 3", len(want))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("duplicates (-map of every name +inspect):\n%s", d)
	}
}
