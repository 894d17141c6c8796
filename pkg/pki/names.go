package pki

import (
	"strings"
	"unicode"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// ValidateDNSName checks a name for a DNS subjectAltName: labels of
// letters, digits and hyphens (not at either end), 1 to 63 bytes each, 253 in
// all, no empty label (so no leading, trailing or doubled dot), and a
// wildcard only as the whole leftmost label ("*.example.org"), which is the
// only form RFC 6125 and every TLS client match.
func ValidateDNSName(field, name string) error {
	if name == "" {
		return errs.Invalid(field, "empty name")
	}
	if len(name) > 253 {
		return errs.Invalid(field, "%q is longer than 253 characters", name)
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		switch {
		case l == "":
			return errs.Invalid(field, "%q has an empty label (a leading, trailing or doubled dot)", name)
		case l == "*" && i == 0 && len(labels) > 2:
			continue
		case l == "*" && i == 0:
			return errs.Invalid(field, "%q: a wildcard needs at least two labels after it", name)
		case strings.Contains(l, "*"):
			return errs.Invalid(field, "%q: a wildcard may only be the whole leftmost label (*.example.org)", name)
		case len(l) > 63:
			return errs.Invalid(field, "%q has a label longer than 63 characters", name)
		case l[0] == '-' || l[len(l)-1] == '-':
			return errs.Invalid(field, "%q: a label can't start or end with a hyphen", name)
		}
		for _, r := range l {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return errs.Invalid(field, "%q is not a DNS name (%q is not allowed; use letters, digits, hyphens and dots)", name, r)
			}
		}
	}
	if !strings.Contains(name, ".") && isDigits(name) {
		return errs.Invalid(field, "%q is not a DNS name or an IP address", name)
	}
	return nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// normalizeName lower-cases a DNS name: DNS is case-insensitive, so
// "Pi.local" and "pi.local" are one SAN, and comparisons stay simple.
func normalizeName(name string) string {
	if ip := parseIP(name); ip != nil {
		return ip.String()
	}
	return strings.ToLower(name)
}

// ValidateCommonName checks a CA name: printable text, at most 64
// characters (the X.520 upper bound for a common name).
// DefaultCAName is the common name a CA gets when none is asked for:
// "mosqprov CA" and the host it serves, so two brokers' CAs tell apart in a
// phone's list of installed certificates. A name over the 64 characters a
// common name holds (RFC 5280 ub-common-name) keeps the host's first label.
func DefaultCAName(host string) string {
	const prefix = "mosqprov CA"
	host = strings.TrimSuffix(strings.TrimSpace(host), ".")
	if host == "" {
		return prefix
	}
	if name := prefix + " " + host; len(name) <= 64 {
		return name
	}
	first, _, _ := strings.Cut(host, ".")
	if name := prefix + " " + first; len(name) <= 64 {
		return name
	}
	return prefix
}

func ValidateCommonName(field, cn string) error {
	if strings.TrimSpace(cn) == "" {
		return errs.Invalid(field, "empty name")
	}
	if len(cn) > 64 {
		return errs.Invalid(field, "%q is longer than 64 characters", cn)
	}
	for _, r := range cn {
		if !unicode.IsPrint(r) {
			return errs.Invalid(field, "%q contains a control character", cn)
		}
	}
	return nil
}

// ValidateClientName checks a client certificate's name. It becomes the CN
// (the MQTT user name under use_identity_as_username) and a folder name
// under /etc/mosqprov/clients, so it is kept to letters, digits, '.', '_',
// '-' and '@', not starting with '.' or '-'; MQTT wildcards, '/', ':' and
// blanks can't get in.
func ValidateClientName(field, name string) error {
	if name == "" {
		return errs.Invalid(field, "empty name")
	}
	if len(name) > 64 {
		return errs.Invalid(field, "%q is longer than 64 characters", name)
	}
	if name[0] == '.' || name[0] == '-' {
		return errs.Invalid(field, "%q can't start with %q", name, name[0])
	}
	for _, r := range name {
		if !(r == '-' || r == '_' || r == '.' || r == '@' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return errs.Invalid(field, "%q: %q is not allowed (use letters, digits, '.', '_', '-', '@')", name, r)
		}
	}
	return nil
}
