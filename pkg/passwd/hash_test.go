package passwd

import (
	"bufio"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtures = "../../testdata/passwd"

// fixturePasswords reads testdata/passwd/passwords.txt (name:password).
func fixturePasswords(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, "passwords.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		name, pw, _ := strings.Cut(sc.Text(), ":")
		m[name] = pw
	}
	return m
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMosquittoPasswdVectors checks hashes the real mosquitto_passwd 2.0.11
// wrote (both -H sha512-pbkdf2 and -H sha512) verify with their passwords,
// and only with them.
func TestMosquittoPasswdVectors(t *testing.T) {
	pws := fixturePasswords(t)
	for _, file := range []string{"mosquitto_passwd-pbkdf2.passwd", "mosquitto_passwd-sha512.passwd"} {
		f, err := Parse(readFixture(t, file))
		if err != nil {
			t.Fatal(err)
		}
		entries := f.Entries()
		if len(entries) != 5 {
			t.Fatalf("%s: %d users, want 5", file, len(entries))
		}
		for _, e := range entries {
			h, err := ParseHash(e.Hash)
			if err != nil {
				t.Fatalf("%s %s: %v", file, e.Name, err)
			}
			want := SHA512
			if strings.Contains(file, "pbkdf2") {
				want = PBKDF2
				if h.Iterations != 101 {
					t.Errorf("%s %s: iterations %d, want 101 (2.0's default)", file, e.Name, h.Iterations)
				}
			}
			if h.Algo != want {
				t.Errorf("%s %s: algo %s", file, e.Name, h.Algo)
			}
			if h.String() != e.Hash {
				t.Errorf("%s %s: re-encoded as %s", file, e.Name, h.String())
			}
			pw, ok := pws[e.Name]
			if !ok {
				t.Fatalf("no password for %s", e.Name)
			}
			if !h.Verify(pw) {
				t.Errorf("%s %s: the password does not verify", file, e.Name)
			}
			for _, wrong := range []string{pw + "x", strings.ToUpper(pw), pw[:len(pw)-1], ""} {
				if h.Verify(wrong) {
					t.Errorf("%s %s: a wrong password verifies", file, e.Name)
				}
			}
		}
	}
}

// TestPBKDF2Vector checks against a key computed by Python's hashlib (an
// independent PBKDF2-HMAC-SHA512): salt "123456789012", 1000 iterations.
func TestPBKDF2Vector(t *testing.T) {
	const hash = "$7$1000$MTIzNDU2Nzg5MDEy$ywHcbsE43Ameu/6dzoCKhgpR0FBetXUmjSihlsQ9cmuyQ9UDBEq67K7Ywequ/Sa4VgXagX4do5sfSB+8PueZ+g=="
	h, err := ParseHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	if string(h.Salt) != "123456789012" || h.Iterations != 1000 {
		t.Fatalf("parsed %+v", h)
	}
	if !h.Verify("x") || h.Verify("y") {
		t.Fatal("python vector does not verify")
	}
}

func TestNewRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		algo Algo
		it   int
		pfx  string
	}{{PBKDF2, 0, "$7$1000$"}, {PBKDF2, 101, "$7$101$"}, {SHA512, 0, "$6$"}, {"", 0, "$7$1000$"}} {
		h, err := New("s3cret ✓", tc.algo, tc.it)
		if err != nil {
			t.Fatal(err)
		}
		s := h.String()
		if !strings.HasPrefix(s, tc.pfx) {
			t.Errorf("%s/%d: %s lacks prefix %s", tc.algo, tc.it, s, tc.pfx)
		}
		back, err := ParseHash(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if !back.Verify("s3cret ✓") || back.Verify("s3cret") {
			t.Errorf("%s: verify wrong", s)
		}
		h2, _ := New("s3cret ✓", tc.algo, tc.it)
		if h2.String() == s {
			t.Error("two hashes of one password share a salt")
		}
	}
}

func TestParseHashRejects(t *testing.T) {
	crypt := strings.TrimSpace(strings.SplitN(string(readFixture(t, "crypt-sha512.passwd")), "crypt:", 2)[1])
	good := "$7$101$NvcQIKDS1TBpqIwY$+DaA3QCdRsk4OAe4kK9heOQBIvxnjrJlr4AsblQAvFKV0LrWTh2XBUS2b+4N+TPAqQ14T0rTdsGYWg/9xzOn0g=="
	for _, tc := range []struct{ hash, want string }{
		{crypt, "crypt(3) SHA-512"},
		{"$6$rounds=5000$saltsalt$" + strings.Repeat("a", 86), "crypt(3) SHA-512"},
		{"hunter2", "plaintext"},
		{"", "empty"},
		{"$1$abc$def", "crypt(3) hash"},
		{"$y$j9T$abc$def", "crypt(3) hash"},
		{"$argon2id$v=19$m=65536,t=3,p=4$abc$def", "argon2id"},
		{"$7$0$" + good[7:], "iteration count"},
		{"$7$-5$" + good[7:], "iteration count"},
		{"$7$0101$" + good[7:], "iteration count"},
		{"$7$abc$" + good[7:], "iteration count"},
		{"$7$101", "no salt"},
		{"$7$101$NvcQIKDS1TBpqIwY", "no $"},
		{"$7$101$NvcQIKDS1TBpqIw$" + good[24:], "salt"},
		{"$7$101$NvcQIKDS1TBpqI.Y$" + good[24:], "salt"},
		{good[:len(good)-2], "key"},
		{good + "\r", "key"},
		{good[:40] + "\n" + good[41:], "key"},
		{"$5$abc", "crypt(3)"},
		{"$9$abc", "unknown hash type"},
	} {
		_, err := ParseHash(tc.hash)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHash(%q) = %v, want an error with %q", tc.hash, err, tc.want)
		}
	}
	if _, err := ParseHash(good); err != nil {
		t.Fatal(err)
	}
}

func TestParseAlgo(t *testing.T) {
	for in, want := range map[string]Algo{"pbkdf2": PBKDF2, "sha512": SHA512, "sha512-pbkdf2": PBKDF2} {
		if got, err := ParseAlgo(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseAlgo("md5"); err == nil || !strings.Contains(err.Error(), "--hash") {
		t.Errorf("md5: %v", err)
	}
}

// TestCheckBase64MatchesTheDecoder: checkBase64, which decides without
// decoding, accepts exactly what the strict decoder decodes to n bytes, at
// the salt's and the key's lengths, for every last character and padding.
func TestCheckBase64MatchesTheDecoder(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
	for _, size := range []struct{ textLen, n int }{{saltB64Len, saltLen}, {keyB64Len, keyLen}, {4, 1}, {4, 2}} {
		valid := base64.StdEncoding.EncodeToString(make([]byte, size.n))
		for _, pos := range []int{0, size.textLen - 3, size.textLen - 2, size.textLen - 1} {
			if pos < 0 {
				continue
			}
			for _, c := range []byte(alphabet) {
				for _, c2 := range []byte("A=Qg") {
					b := []byte(valid)
					b[pos] = c
					if pos+1 < len(b) {
						b[pos+1] = c2
					}
					s := string(b)
					got, err := base64.StdEncoding.Strict().DecodeString(s)
					want := err == nil && len(got) == size.n
					if ok := checkBase64(s, size.textLen, size.n) == nil; ok != want {
						t.Errorf("%q (n=%d): checkBase64 says %v, the decoder %v", s, size.n, ok, want)
					}
				}
			}
		}
	}
}
