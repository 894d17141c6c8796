// Package acl is the broker's ACL file: a model of its rules (per user,
// for anonymous clients, and patterns with %u and %c), parsing with the
// broker's own rules, validation of user names and topic filters, rendering
// from templates/acl.tmpl, and a converge function that writes it.
package acl

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/passwd"
)

// Access is what a rule grants or denies.
type Access string

const (
	AccessRead      Access = "read"
	AccessWrite     Access = "write"
	AccessReadWrite Access = "readwrite"
	// AccessDeny wins over every grant that matches the same topic (the broker
	// checks deny rules first).
	AccessDeny Access = "deny"
)

// ParseAccess checks an access word.
func ParseAccess(s string) (Access, error) {
	switch a := Access(s); a {
	case AccessRead, AccessWrite, AccessReadWrite, AccessDeny:
		return a, nil
	}
	return "", errs.Invalid("access", "%q is not read, write, readwrite or deny", s)
}

// Kind is whom a rule applies to.
type Kind string

const (
	// KindUser rules apply to one user name (with mutual TLS, the CN of the
	// client certificate).
	KindUser Kind = "user"
	// KindAnonymous rules apply to clients without a user name; they only
	// matter with allow_anonymous true.
	KindAnonymous Kind = "anonymous"
	// KindPattern rules apply to every client, %u and %c replaced by its
	// user name and client id.
	KindPattern Kind = "pattern"
)

// Rule is one line of the ACL file.
type Rule struct {
	Kind   Kind   `json:"kind"`
	User   string `json:"user,omitempty"`
	Access Access `json:"access"`
	Topic  string `json:"topic"`
}

// Key identifies a rule for replacement: one access per topic per subject.
func (r Rule) Key() string { return string(r.Kind) + "\x00" + r.User + "\x00" + r.Topic }

// String is the rule as a person reads it.
func (r Rule) String() string {
	who := "anonymous"
	switch r.Kind {
	case KindUser:
		who = "user " + r.User
	case KindPattern:
		who = "pattern"
	}
	return fmt.Sprintf("%s %s %s", who, r.Access, r.Topic)
}

// Validate checks every value before it can reach the file.
func (r Rule) Validate() error {
	switch r.Kind {
	case KindUser:
		// What the file needs; new names also get ValidateUser's MQTT rules
		// where they come in (the acl commands, broker.yaml).
		if err := passwd.ValidateLineName(r.User); err != nil {
			return err
		}
	case KindAnonymous, KindPattern:
		if r.User != "" {
			return errs.Invalid("USER", "a %s rule has no user", r.Kind)
		}
	default:
		return errs.Invalid("kind", "%q is not user, anonymous or pattern", r.Kind)
	}
	if _, err := ParseAccess(string(r.Access)); err != nil {
		return err
	}
	if err := ValidateTopic(r.Topic); err != nil {
		return err
	}
	if r.Kind == KindPattern {
		return validatePattern(r.Topic)
	}
	return nil
}

// ValidateUser checks a user name: the same rules as the password file's,
// so a rule can always name a user that can log in.
func ValidateUser(name string) error {
	return passwd.ValidateName(name)
}

// MaxTopic is MQTT's limit on a topic (a two-byte length), which the broker
// also applies to ACL topics.
const MaxTopic = 65535

// ValidateTopic checks a topic filter the way the broker's
// mosquitto_sub_topic_check does, plus what would break the file: '#' only
// as the whole last level, '+' only as a whole level, valid UTF-8, no NUL,
// no control character (a newline would add a rule), no blank at either
// end (the broker trims them).
func ValidateTopic(t string) error {
	switch {
	case t == "":
		return errs.Invalid("TOPIC", "empty")
	case len(t) > MaxTopic:
		return errs.Invalid("TOPIC", "%d bytes long; MQTT allows at most %d", len(t), MaxTopic)
	case !utf8.ValidString(t):
		return errs.Invalid("TOPIC", "%q is not valid UTF-8", t)
	case strings.ContainsRune(t, 0):
		return errs.Invalid("TOPIC", "%q contains a NUL byte", t)
	case strings.IndexFunc(t, unicode.IsControl) >= 0 || strings.ContainsAny(t, "\u2028\u2029"):
		return errs.Invalid("TOPIC", "%q contains a control character or line break", t)
	case unicode.IsSpace(first(t)) || unicode.IsSpace(last(t)):
		return errs.Invalid("TOPIC", "%q starts or ends with a blank, which the broker would drop", t)
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		switch {
		case strings.Contains(l, "#") && (l != "#" || i != len(levels)-1):
			return errs.Invalid("TOPIC", "%q: '#' must be a whole level and the last one (like a/#)", t)
		case strings.Contains(l, "+") && l != "+":
			return errs.Invalid("TOPIC", "%q: '+' must be a whole level (like a/+/c)", t)
		}
	}
	return nil
}

// validatePattern checks that %u and %c stand for a whole level, as
// mosquitto.conf(5) requires, so a user name can't reach a sibling's topics.
func validatePattern(t string) error {
	for _, l := range strings.Split(t, "/") {
		if (strings.Contains(l, "%u") || strings.Contains(l, "%c")) && l != "%u" && l != "%c" {
			return errs.Invalid("TOPIC", "%q: %%u and %%c must be a whole level (like users/%%u/#)", t)
		}
	}
	return nil
}

func first(s string) rune { r, _ := utf8.DecodeRuneInString(s); return r }
func last(s string) rune  { r, _ := utf8.DecodeLastRuneInString(s); return r }

// File is the ACL file's rules.
type File struct {
	Rules []Rule `json:"rules"`
}

// ConfPath is what the broker's configuration names as acl_file for this
// ACL, kept at path: path while it has a rule, nothing ("") while it has
// none, because an acl_file without rules denies every client everything.
func (f *File) ConfPath(path string) string {
	if len(f.Rules) == 0 {
		return ""
	}
	return path
}

// Set adds r, or replaces the access of the rule for the same subject and
// topic. It reports whether anything changed.
func (f *File) Set(r Rule) (bool, error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	for i, old := range f.Rules {
		if old.Kind == r.Kind && old.User == r.User && old.Topic == r.Topic {
			if old.Access == r.Access {
				return false, nil
			}
			f.Rules[i].Access = r.Access
			return true, nil
		}
	}
	f.Rules = append(f.Rules, r)
	return true, nil
}

// Remove deletes the rules that match: same kind, same user and, when
// topic is not empty, same topic. It returns how many went.
func (f *File) Remove(kind Kind, user, topic string) int {
	kept := f.Rules[:0]
	n := 0
	for _, r := range f.Rules {
		if r.Kind == kind && r.User == user && (topic == "" || r.Topic == topic) {
			n++
			continue
		}
		kept = append(kept, r)
	}
	f.Rules = kept
	return n
}

// Sorted returns the rules in the file's order: anonymous, patterns, then
// users by name; within each, by topic.
func (f *File) Sorted() []Rule {
	out := append([]Rule(nil), f.Rules...)
	rank := map[Kind]int{KindAnonymous: 0, KindPattern: 1, KindUser: 2}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		if a.User != b.User {
			return a.User < b.User
		}
		return a.Topic < b.Topic
	})
	return out
}

// Validate checks every rule.
func (f *File) Validate() error {
	for _, r := range f.Rules {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	return nil
}
