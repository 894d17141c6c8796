// Package passwd reads, checks and edits Mosquitto password files, and hashes
// passwords in the two formats Mosquitto itself writes and reads:
//
//	$7$<iterations>$<salt>$<key>  PBKDF2-HMAC-SHA512 (mosquitto_passwd's default since 2.0)
//	$6$<salt>$<key>               SHA-512(password || salt) (the 1.x default)
//
// with a 12-byte salt and a 64-byte key, both standard base64 with padding
// (Mosquitto 2.0.11 src/security_default.c unpwd__decode_passwords requires
// exactly 12 and 64 decoded bytes). Mosquitto's "$6$" is NOT crypt(3)
// SHA-512: lines made by `openssl passwd -6` or `mkpasswd -m sha-512` look
// alike and are rejected by the broker, so this package needs no crypt
// library and flags such lines instead.
package passwd

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// Algo is a hash format the broker reads.
type Algo string

const (
	// PBKDF2 is "$7$": PBKDF2-HMAC-SHA512.
	PBKDF2 Algo = "pbkdf2"
	// SHA512 is "$6$": one SHA-512 over password and salt. Only for brokers
	// older than 2.0; it is cheap to brute-force.
	SHA512 Algo = "sha512"
)

const (
	// DefaultIterations is what mosquitto_passwd 2.1 writes. 2.0's writes 101
	// (PW_DEFAULT_ITERATIONS in 2.0.11's password_mosq.h); the broker accepts
	// any count >= 1.
	DefaultIterations = 1000
	// MaxIterations bounds --iterations: the broker runs PBKDF2 on every
	// login, and a slip of the finger must not make each CONNECT cost
	// seconds of CPU on a Raspberry Pi.
	MaxIterations = 10_000_000

	saltLen = 12
	keyLen  = 64
	// Lengths of the base64 text of the salt and the key.
	saltB64Len = 16
	keyB64Len  = 88
)

// ParseAlgo turns a --hash value into an Algo.
func ParseAlgo(s string) (Algo, error) {
	switch Algo(s) {
	case PBKDF2, SHA512:
		return Algo(s), nil
	case "sha512-pbkdf2": // mosquitto_passwd -H's spelling
		return PBKDF2, nil
	}
	return "", errs.Invalid("--hash", "%q is not pbkdf2 or sha512", s)
}

// Hash is a parsed Mosquitto password hash.
type Hash struct {
	Algo       Algo
	Iterations int // PBKDF2 only
	Salt       []byte
	Key        []byte
}

// New hashes password with a fresh random salt.
func New(password string, algo Algo, iterations int) (Hash, error) {
	if err := ValidatePassword(password); err != nil {
		return Hash{}, err
	}
	if algo == "" {
		algo = PBKDF2
	}
	if algo == PBKDF2 && iterations == 0 {
		iterations = DefaultIterations
	}
	if err := checkIterations(iterations); algo == PBKDF2 && err != nil {
		return Hash{}, err
	}
	if algo == SHA512 {
		iterations = 0
	}
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	h := Hash{Algo: algo, Iterations: iterations, Salt: salt}
	key, err := h.derive(password)
	if err != nil {
		return Hash{}, err
	}
	h.Key = key
	return h, nil
}

func checkIterations(n int) error {
	if n < 1 || n > MaxIterations {
		return errs.Invalid("--iterations", "%d is outside 1..%d", n, MaxIterations)
	}
	return nil
}

func (h Hash) derive(password string) ([]byte, error) {
	switch h.Algo {
	case PBKDF2:
		return pbkdf2.Key(sha512.New, password, h.Salt, h.Iterations, keyLen)
	case SHA512:
		d := sha512.New()
		d.Write([]byte(password))
		d.Write(h.Salt)
		return d.Sum(nil), nil
	}
	return nil, fmt.Errorf("unknown hash type %q", h.Algo)
}

// Verify reports whether password produces this hash, in constant time.
func (h Hash) Verify(password string) bool {
	key, err := h.derive(password)
	return err == nil && subtle.ConstantTimeCompare(key, h.Key) == 1
}

// String is the hash as it stands after "name:" in the password file.
func (h Hash) String() string {
	salt := base64.StdEncoding.EncodeToString(h.Salt)
	key := base64.StdEncoding.EncodeToString(h.Key)
	if h.Algo == SHA512 {
		return "$6$" + salt + "$" + key
	}
	return "$7$" + strconv.Itoa(h.Iterations) + "$" + salt + "$" + key
}

// ParseHash reads a hash in exactly the form Mosquitto writes it. Anything
// else, even what the broker might tolerate, is refused: mosqprov only writes
// hashes it can prove the broker reads.
func ParseHash(s string) (Hash, error) {
	h, salt, key, err := splitHash(s)
	if err != nil {
		return Hash{}, err
	}
	// checkHash proved both canonical base64 of their exact lengths.
	h.Salt, _ = base64.StdEncoding.Strict().DecodeString(salt)
	h.Key, _ = base64.StdEncoding.Strict().DecodeString(key)
	return h, nil
}

// checkHash is ParseHash's verdict without decoding anything: a password
// file's every line is checked on each edit (File.Inspect), and allocating
// its salt and key would be most of the edit's time.
func checkHash(s string) error {
	_, _, _, err := splitHash(s)
	return err
}

// splitHash checks s and returns its algorithm, iterations and the base64
// text of its salt and key.
func splitHash(s string) (h Hash, salt, key string, err error) {
	var rest string
	switch {
	case strings.HasPrefix(s, "$7$"):
		h.Algo = PBKDF2
		it, after, ok := strings.Cut(s[3:], "$")
		if !ok {
			return Hash{}, "", "", errs.Invalid("hash", "$7$ hash has no salt")
		}
		// Digits only, no leading zero: the count re-encodes as it reads
		// (checked without formatting it back, which cost every line of a
		// large file an allocation).
		n, err := strconv.Atoi(it)
		if err != nil || it[0] < '1' || it[0] > '9' || n > math.MaxInt32 {
			return Hash{}, "", "", errs.Invalid("hash", "$7$ iteration count %q is not a whole number from 1 to %d", it, math.MaxInt32)
		}
		h.Iterations, rest = n, after
	case strings.HasPrefix(s, "$6$"):
		h.Algo, rest = SHA512, s[3:]
	default:
		return Hash{}, "", "", errs.Invalid("hash", "%s", describeForeign(s))
	}
	salt, key, ok := strings.Cut(rest, "$")
	if !ok {
		return Hash{}, "", "", errs.Invalid("hash", "no $ between salt and key")
	}
	if err := checkBase64(salt, saltB64Len, saltLen); err != nil {
		if h.Algo == SHA512 && cryptSHA512().MatchString(s) {
			return Hash{}, "", "", errs.Invalid("hash", "%s", cryptMessage)
		}
		return Hash{}, "", "", errs.Invalid("hash", "salt: %v", err)
	}
	if err := checkBase64(key, keyB64Len, keyLen); err != nil {
		if h.Algo == SHA512 && cryptSHA512().MatchString(s) {
			return Hash{}, "", "", errs.Invalid("hash", "%s", cryptMessage)
		}
		return Hash{}, "", "", errs.Invalid("hash", "key: %v", err)
	}
	return h, salt, key, nil
}

// checkBase64 accepts only canonical, padded standard base64 of exactly n
// bytes: what base64.StdEncoding.Strict() decodes to n bytes, except that
// Go's decoder skips \r and \n, which the broker's does not.
func checkBase64(s string, textLen, n int) error {
	if len(s) != textLen {
		return fmt.Errorf("%d characters, want %d (base64 of %d bytes)", len(s), textLen, n)
	}
	// n bytes take (4n+2)/3 characters, then '=' up to textLen; the last
	// character's bits past the n-th byte are zero (Strict).
	data := (4*n + 2) / 3
	// The usual case first, without a branch per character: every data
	// character below 64 (not '=', not invalid), then only '='. An edit
	// checks every line of a file of thousands.
	var acc byte
	for i := 0; i < data; i++ {
		acc |= b64Values[s[i]]
	}
	if acc < 64 && strings.Count(s[data:], "=") == len(s)-data {
		if unused := 6*data - 8*n; unused > 0 && b64Values[s[data-1]]&(1<<unused-1) != 0 {
			return fmt.Errorf("not standard base64 of %d bytes", n)
		}
		return nil
	}
	bad := false
	for i := 0; i < len(s); i++ {
		v := b64Values[s[i]]
		switch {
		case v == b64Invalid:
			return fmt.Errorf("%q is not standard base64", s[i])
		case (v == b64Pad) != (i >= data):
			bad = true
		}
	}
	if unused := (6*data - 8*n); !bad && unused > 0 && b64Values[s[data-1]]&(1<<unused-1) != 0 {
		bad = true
	}
	if bad {
		return fmt.Errorf("not standard base64 of %d bytes", n)
	}
	return nil
}

const (
	b64Pad     = 64
	b64Invalid = 255
)

// b64Values maps a character of standard base64 to its 6 bits, '=' to
// b64Pad and anything else to b64Invalid.
var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = b64Invalid
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	t['='] = b64Pad
	return t
}()

// cryptSHA512 is glibc crypt(3)'s SHA-512 ("$6$[rounds=N$]salt$86 chars"
// in crypt's own ./0-9A-Za-z alphabet, no padding).
var cryptSHA512 = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\$6\$(rounds=[0-9]+\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{86}$`)
})

const cryptMessage = "crypt(3) SHA-512 (openssl passwd -6, mkpasswd -m sha-512), not Mosquitto's own $6$: the broker rejects it and the user can never log in"

// describeForeign names a hash that is neither $6$ nor $7$.
func describeForeign(s string) string {
	switch {
	case s == "":
		return "empty hash"
	case !strings.HasPrefix(s, "$"):
		return "plaintext password, not a hash: the broker (built with TLS, as Debian's is) rejects it"
	case strings.HasPrefix(s, "$argon2id$"):
		return "argon2id hash: only Mosquitto 2.1 built with argon2 reads it, not 2.0"
	case strings.HasPrefix(s, "$1$"), strings.HasPrefix(s, "$5$"), strings.HasPrefix(s, "$2"), strings.HasPrefix(s, "$y$"):
		return "crypt(3) hash (MD5, SHA-256, bcrypt or yescrypt), which Mosquitto does not read"
	}
	return "unknown hash type: Mosquitto reads only $6$ and $7$"
}
