package passwd

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// startBroker runs the real mosquitto with password_file pointing at the
// file Converge manages under sys.
func startBroker(t *testing.T, sys system.System) (*brokertest.Broker, int) {
	t.Helper()
	port := brokertest.FreePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n", port, sys.HostPath(target))
	return brokertest.Start(t, sys.Root(), conf, port), port
}

func login(port int, user, pw string) error {
	return brokertest.Client{Port: port, User: user, Password: pw}.Publish("mosqprov/test", "hello")
}

// loginAfterReload retries a login while the broker handles SIGHUP, which
// it does asynchronously. The deadline only bounds a broken test; it is not
// a speed requirement, and a loaded machine can take its time.
func loginAfterReload(port int, user, pw string) bool {
	deadline := time.Now().Add(30 * time.Second)
	for login(port, user, pw) != nil {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func assertRefused(t *testing.T, port int, user, pw string) {
	t.Helper()
	err := login(port, user, pw)
	if err == nil {
		t.Fatalf("%s logged in with a wrong password", user)
	}
	if !strings.Contains(err.Error(), "not authorised") {
		t.Fatalf("%s: refused for another reason: %v", user, err)
	}
}

// TestBrokerAcceptsWhatMosqprovWrites: for each hash type, users written by
// Converge log in to the real broker with their passwords, and wrong
// passwords are refused.
func TestBrokerAcceptsWhatMosqprovWrites(t *testing.T) {
	brokertest.Require(t)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"pbkdf2-1000", Options{}},
		{"pbkdf2-101", Options{Iterations: 101}},
		{"sha512", Options{Algo: SHA512}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := system.NewReal(brokertest.Dir(t))
			want := []Desired{
				{Name: "alice", Password: "correct horse"},
				{Name: "zoë", Password: "pässwörd ✓ with:colon"},
			}
			if _, err := Converge(sys, target, want, tc.opts); err != nil {
				t.Fatal(err)
			}
			_, port := startBroker(t, sys)
			for _, d := range want {
				if err := login(port, d.Name, d.Password); err != nil {
					t.Fatalf("%s: %v", d.Name, err)
				}
				assertRefused(t, port, d.Name, d.Password+"x")
			}
			assertRefused(t, port, "alice", "pässwörd ✓ with:colon")
			assertRefused(t, port, "mallory", "correct horse")
		})
	}
}

// TestBrokerReloadPicksUpChanges: a user added while the broker runs logs in
// after SIGHUP, which is why Converge asks for a reload, not a restart.
func TestBrokerReloadPicksUpChanges(t *testing.T) {
	brokertest.Require(t)
	sys := system.NewReal(brokertest.Dir(t))
	if _, err := Converge(sys, target, []Desired{{Name: "alice", Password: "a"}}, Options{}); err != nil {
		t.Fatal(err)
	}
	b, port := startBroker(t, sys)
	res, err := Converge(sys, target, []Desired{{Name: "bob", Password: "b"}}, Options{Remove: []string{"alice"}})
	if err != nil || res.Need.String() != "reload" {
		t.Fatalf("%v %v", res.Need, err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if !loginAfterReload(port, "bob", "b") {
		t.Fatalf("bob can't log in after SIGHUP:\n%s", b.ReadLog())
	}
	assertRefused(t, port, "alice", "a")
}

// TestBrokerAcceptsMosquittoPasswdFixtures: the fixtures made by the real
// mosquitto_passwd log in with the passwords the vector tests use, so those
// tests check against what the broker really accepts.
func TestBrokerAcceptsMosquittoPasswdFixtures(t *testing.T) {
	brokertest.Require(t)
	pws := fixturePasswords(t)
	for _, file := range []string{"mosquitto_passwd-pbkdf2.passwd", "mosquitto_passwd-sha512.passwd"} {
		t.Run(file, func(t *testing.T) {
			sys := system.NewReal(brokertest.Dir(t))
			seedFor(t, sys, readFixture(t, file))
			_, port := startBroker(t, sys)
			for _, name := range []string{"alice", "bob", "zoë", "dave"} {
				if err := login(port, name, pws[name]); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			assertRefused(t, port, "carol", "y")
		})
	}
}

// TestBrokerRejectsCryptSHA512 is the negative control behind "no crypt
// library": a crypt(3) SHA-512 line (openssl passwd -6) with the right
// password is refused by the real broker, which says it can't decode it,
// and Inspect flags it; the same user written by mosqprov logs in.
func TestBrokerRejectsCryptSHA512(t *testing.T) {
	brokertest.Require(t)
	pw := fixturePasswords(t)["crypt"]
	data := readFixture(t, "crypt-sha512.passwd")
	findings := Inspect(data)
	if len(findings) != 1 || findings[0].Kind != Crypt || findings[0].User != "crypt" {
		t.Fatalf("Inspect: %v", findings)
	}
	sys := system.NewReal(brokertest.Dir(t))
	seedFor(t, sys, data)
	// A valid user next to it proves the broker did read the file.
	if _, err := Converge(sys, target, []Desired{{Name: "control", Password: "ok"}}, Options{}); err != nil {
		t.Fatal(err)
	}
	b, port := startBroker(t, sys)
	if err := login(port, "control", "ok"); err != nil {
		t.Fatal(err)
	}
	assertRefused(t, port, "crypt", pw)
	if log := b.ReadLog(); !strings.Contains(log, "Unable to decode password for user crypt") {
		t.Fatalf("the broker did not say why:\n%s", log)
	}
	// mosqprov's own $6$ for the same password logs in.
	if _, err := Converge(sys, target, []Desired{{Name: "crypt", Password: pw}}, Options{Algo: SHA512}); err != nil {
		t.Fatal(err)
	}
	b.Reload()
	if !loginAfterReload(port, "crypt", pw) {
		t.Fatalf("mosqprov's $6$ for the same password does not log in:\n%s", b.ReadLog())
	}
}

// seedFor writes data as the password file under sys, readable by the
// broker after it drops to the mosquitto user.
func seedFor(t *testing.T, sys system.System, data []byte) {
	t.Helper()
	attr := system.Attr{Mode: 0o600, User: "mosquitto", Group: "mosquitto"}
	if os.Geteuid() != 0 {
		attr = system.Attr{Mode: 0o600}
	}
	if _, err := sys.EnsureDir("/etc/mosquitto", system.Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.WriteFile(target, data, attr); err != nil {
		t.Fatal(err)
	}
}

// TestBrokerReadsFilesAsParseDoes is the check behind Parse, Lookup and
// Inspect: for awkward lines (blanks and CRLF around fields, empty fields,
// a user twice, a broken line after a good one, '#' after blanks, no hash,
// plaintext, crypt(3), other hash types, no final newline) whether the real
// broker lets a user in with a password must be exactly what mosqprov's
// reading of the same file says.
func TestBrokerReadsFilesAsParseDoes(t *testing.T) {
	brokertest.Require(t)
	hash := func(pw string) string {
		h, err := New(pw, PBKDF2, 1)
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	crypt := strings.TrimSpace(strings.SplitN(string(readFixture(t, "crypt-sha512.passwd")), "crypt:", 2)[1])
	file := strings.Join([]string{
		"# a comment",
		"  bob : " + hash("pw-bob") + " \r",
		"dup:" + hash("first"),
		"dup:" + hash("second"),
		"dup2:" + hash("good"),
		"dup2:broken",
		"   # indented:" + hash("pw-indented"),
		"nohash:",
		"::dan::" + hash("pw-dan") + ":extra",
		"plain:hunter2",
		"crypt:" + crypt,
		"old:$1$abc$def",
		"last:" + hash("pw-last"), // no final newline
	}, "\n")
	f, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	sys := system.NewReal(brokertest.Dir(t))
	seedFor(t, sys, []byte(file))
	_, port := startBroker(t, sys)
	accepted := 0
	for _, c := range []struct{ user, pw string }{
		{"bob", "pw-bob"}, {"bob", "pw-bobx"},
		{"dup", "first"}, {"dup", "second"},
		{"dup2", "good"},
		{"# indented", "pw-indented"},
		{"nohash", ""}, {"nohash", "x"},
		{"dan", "pw-dan"},
		{"plain", "hunter2"},
		{"crypt", fixturePasswords(t)["crypt"]},
		{"old", "abc"},
		{"last", "pw-last"},
	} {
		ours := false
		if l, ok := f.Lookup(c.user); ok {
			h, err := ParseHash(l.Hash)
			ours = err == nil && h.Verify(c.pw)
		}
		broker := login(port, c.user, c.pw) == nil
		if broker != ours {
			t.Errorf("user %q password %q: broker lets in %v, mosqprov's reading says %v", c.user, c.pw, broker, ours)
		}
		if broker {
			accepted++
		}
	}
	if accepted < 4 {
		t.Fatalf("only %d logins worked: the broker did not read the file", accepted)
	}
}

// TestBrokerReadsAStreamedEdit: an edit of a file many read buffers long
// (a user added, one given a new password, one removed, the last line
// without its line ending) keeps every other line byte for byte, reports
// the file's findings at their new line numbers, and the real broker reads
// the result as intended.
func TestBrokerReadsAStreamedEdit(t *testing.T) {
	brokertest.Require(t)
	sys := system.NewReal(brokertest.Dir(t))
	h, err := New("x", PBKDF2, 1)
	if err != nil {
		t.Fatal(err)
	}
	var seed strings.Builder
	for i := range 2000 {
		if i == 1700 {
			seed.WriteString("broken line without a colon\n")
		}
		fmt.Fprintf(&seed, "user%05d:%s\n", i, h)
	}
	seed.WriteString("user01000:" + h.String()) // a duplicate, as the last line, open
	seedFor(t, sys, []byte(seed.String()))
	if len(seed.String()) < 10*readBuffer {
		t.Fatalf("the file is %d bytes, not many buffers", len(seed.String()))
	}

	res, err := Converge(sys, target, []Desired{{Name: "newcomer", Password: "n"}, {Name: "user00500", Password: "changed"}},
		Options{Remove: []string{"user01500"}, Iterations: 1, SkipUnmanaged: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(sys.HostPath(target))
	if err != nil {
		t.Fatal(err)
	}
	// Every other line as it was; the open last line closed before the
	// new user.
	lines := strings.SplitAfter(string(got), "\n")
	lines = lines[:len(lines)-1] // after the last line ending
	// 2,000 users, the broken line and the duplicate, one removed, one added.
	if len(lines) != 2002 || lines[len(lines)-2] != "user01000:"+h.String()+"\n" || !strings.HasPrefix(lines[len(lines)-1], "newcomer:$7$1$") {
		t.Fatalf("%d lines, ending %q %q", len(lines), lines[len(lines)-2], lines[len(lines)-1])
	}
	want := strings.Replace(strings.Replace(seed.String(), "user01500:"+h.String()+"\n", "", 1),
		"user00500:"+h.String()+"\n", lines[500], 1) + "\n" + lines[len(lines)-1]
	if string(got) != want || !strings.HasPrefix(lines[500], "user00500:$7$1$") {
		t.Fatal("the edit changed other lines than the three it names")
	}
	// Findings as Inspect of the written file gives them, renumbered.
	if fmt.Sprint(res.Findings) != fmt.Sprint(Inspect(got)) || len(res.Findings) != 2 {
		t.Fatalf("findings %v, Inspect of the file %v", res.Findings, Inspect(got))
	}

	_, port := startBroker(t, sys)
	for _, c := range []struct{ user, pw string }{{"newcomer", "n"}, {"user00500", "changed"}, {"user00000", "x"}, {"user01999", "x"}, {"user01000", "x"}} {
		if err := login(port, c.user, c.pw); err != nil {
			t.Errorf("%s: %v", c.user, err)
		}
	}
	assertRefused(t, port, "user00500", "x")
	assertRefused(t, port, "user01500", "x")
}
