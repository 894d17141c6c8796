package passwd

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// maxField is MQTT's limit on a username or password (a two-byte length
// prefix); the broker also drops password-file lines with longer fields.
const maxField = 65535

// ValidateName checks that name can stand in a password file and be sent by
// an MQTT client, so the line mosqprov writes is the user the broker reads.
func ValidateName(name string) error {
	if err := ValidateLineName(name); err != nil {
		return err
	}
	switch {
	case strings.IndexFunc(name, nonCharacter) >= 0:
		// MQTT 3.1.1 §1.5.3 (and 5.0 §1.5.4): a UTF-8 string must not hold
		// U+0000 or surrogates (both refused by ValidateLineName) and should
		// not hold noncharacters; a client library may refuse to send such
		// a name, so the user could never log in.
		return errs.Invalid("username", "%q contains the noncharacter %U, which MQTT strings must not hold", name, firstFunc(name, nonCharacter))
	case strings.IndexFunc(name, invisible) >= 0:
		// A bidirectional override or a zero-width character makes a name
		// print as another ("admin\u200b" looks like "admin").
		return errs.Invalid("username", "%q contains %U, an invisible formatting character (bidirectional override or zero-width); it would make the name look like another", name, firstFunc(name, invisible))
	}
	return nil
}

// ValidateLineName checks only that name can stand in a password file: what
// removing a user that is already there needs, whatever characters it holds.
func ValidateLineName(name string) error {
	switch {
	case name == "":
		return errs.Invalid("username", "empty")
	case len(name) > maxField:
		return errs.Invalid("username", "%d bytes long; MQTT allows at most %d", len(name), maxField)
	case !utf8.ValidString(name):
		// MQTT requires UTF-8 usernames, so no client could log in as it.
		return errs.Invalid("username", "%q is not valid UTF-8", name)
	case strings.ContainsRune(name, ':'):
		return errs.Invalid("username", "%q contains ':', which ends the name in the password file", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errs.Invalid("username", "%q contains a control character", name)
	case unicode.IsSpace(firstRune(name)) || unicode.IsSpace(lastRune(name)):
		// The broker trims blanks around the name, so " bob" would be "bob".
		return errs.Invalid("username", "%q starts or ends with a blank", name)
	case name[0] == '#':
		// The broker skips every line starting with '#'.
		return errs.Invalid("username", "%q starts with '#', which makes the line a comment", name)
	}
	return nil
}

// EmptyPassword is what is wrong with an empty password and what to do:
// Mosquitto never logs a client in with one.
const EmptyPassword = "empty; a user logs in with a password, so give it one that is not empty"

// ValidatePassword checks a plaintext password without ever echoing it.
func ValidatePassword(pw string) error {
	switch {
	case pw == "":
		return errs.Invalid("password", "%s", EmptyPassword)
	case strings.ContainsAny(pw, "\n\r"):
		return errs.Invalid("password", "contains a line break")
	case strings.ContainsRune(pw, 0):
		// The broker hashes the client's password with strlen(), so it
		// would stop at the NUL.
		return errs.Invalid("password", "contains a NUL byte")
	case len(pw) > maxField:
		return errs.Invalid("password", "%d bytes long; MQTT allows at most %d", len(pw), maxField)
	}
	return nil
}

// nonCharacter reports Unicode's 66 noncharacters: U+FDD0..U+FDEF and the
// last two code points of every plane (U+FFFE, U+FFFF, U+1FFFE, ...).
func nonCharacter(r rune) bool {
	return r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE
}

// invisible reports format characters (bidirectional overrides and
// isolates, zero-width space and joiners, the byte order mark) and the
// line and paragraph separators.
func invisible(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) }

func firstFunc(s string, f func(rune) bool) rune {
	for _, r := range s {
		if f(r) {
			return r
		}
	}
	return 0
}

func firstRune(s string) rune { r, _ := utf8.DecodeRuneInString(s); return r }
func lastRune(s string) rune  { r, _ := utf8.DecodeLastRuneInString(s); return r }
