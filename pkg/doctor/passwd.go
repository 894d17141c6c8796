package doctor

// The password file, line by line as the broker reads it.

import (
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/passwd"
)

func (c *Checker) checkPasswordFile() {
	p := c.secretFiles()[0].path
	data, err := c.Sys.ReadFile(p)
	if err != nil {
		return
	}
	for _, f := range passwd.Inspect(data) {
		sev, why := Error, ""
		switch f.Kind {
		case passwd.Crypt:
			// The problem already names the tools that write such lines.
			why = "this user can never log in until the line holds a hash Mosquitto makes"
		case passwd.Plaintext:
			why = "a password in clear: the broker rejects it, and anyone who reads the file learns it"
		case passwd.Duplicate:
			sev, why = Warning, "the broker uses only one of the lines; the other password silently stops working"
		case passwd.Ignored:
			sev, why = Warning, "the broker skips the line: whoever it was meant for can't log in"
		default:
			why = "the broker rejects the line: nobody can log in with it"
		}
		c.add(Finding{ID: IDPasswdLine, Severity: sev, Subject: fmt.Sprintf("%s:%d", p, f.Line),
			Problem: f.String(), Why: why, Fix: c.passwdFix(p, f)})
	}
}

func (c *Checker) specUser(name string) bool {
	if c.Spec == nil {
		return false
	}
	for _, u := range c.Spec.Users {
		if u.Name == name {
			return true
		}
	}
	return false
}

func validUser(u string) bool { return passwd.ValidateName(u) == nil }
