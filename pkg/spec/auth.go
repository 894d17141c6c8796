package spec

import (
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/passwd"
)

// PerListenerAuth reports whether any listener says who may log in there
// (allow_anonymous or users): the configuration is then written per
// listener. Without, it is what it always was: global settings.
func (s *Spec) PerListenerAuth() bool {
	for _, l := range s.Listeners {
		if l.AllowAnonymous != nil || len(l.Users) > 0 {
			return true
		}
	}
	return false
}

// ListenerAnonymous is whether l lets anonymous clients in.
func (s *Spec) ListenerAnonymous(l Listener) bool {
	if l.AllowAnonymous != nil {
		return *l.AllowAnonymous
	}
	return s.AllowAnonymous
}

// AnyAnonymous reports whether some listener lets anonymous clients in.
func (s *Spec) AnyAnonymous() bool {
	for _, l := range s.Listeners {
		if s.ListenerAnonymous(l) {
			return true
		}
	}
	return s.AllowAnonymous && !s.PerListenerAuth()
}

// validateListenerAuth checks listeners[].users: user names as the
// password file takes them, each once, and not on a mutual-TLS listener,
// where the client certificate, not a password, says who connects.
func (s *Spec) validateListenerAuth() (string, error) {
	for i, l := range s.Listeners {
		seen := map[string]bool{}
		for j, u := range l.Users {
			f := fmt.Sprintf("listeners[%d].users[%d]", i, j)
			if err := refield(f, passwd.ValidateListenerUser(u)); err != nil {
				return f, err
			}
			if seen[u] {
				return f, errs.Invalid(f, "%q is listed twice", u)
			}
			seen[u] = true
		}
		if len(l.Users) > 0 && l.MutualTLS {
			f := fmt.Sprintf("listeners[%d].users", i)
			return f, errs.Invalid(f, "a mutual_tls listener takes the user name from the client certificate, not a password: leave users out")
		}
	}
	return "", nil
}
