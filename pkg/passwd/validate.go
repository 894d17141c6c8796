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

func firstRune(s string) rune { r, _ := utf8.DecodeRuneInString(s); return r }
func lastRune(s string) rune  { r, _ := utf8.DecodeLastRuneInString(s); return r }
