package passwd

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// ParseImport reads `user import` input: one "name:password" per line (the
// password is everything after the first ':', so it may hold ':'), blank
// lines and lines starting with '#' skipped, CRLF accepted. src names the
// input in errors; errors never contain a password.
func ParseImport(src string, data []byte) ([]Desired, error) {
	var out []Desired
	first := map[string]int{}
	for num, line := range strings.Split(string(data), "\n") {
		field := fmt.Sprintf("%s line %d", src, num+1)
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if bytes.IndexByte([]byte(line), 0) >= 0 {
			return nil, errs.Invalid(field, "holds a NUL byte")
		}
		name, pw, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errs.Invalid(field, "no ':' between name and password")
		}
		if err := ValidateName(name); err != nil {
			return nil, errs.Invalid(field, "username %s", errs.Problem(err))
		}
		if err := ValidatePassword(pw); err != nil {
			return nil, errs.Invalid(field, "password %s", errs.Problem(err))
		}
		if n, dup := first[name]; dup {
			return nil, errs.Invalid(field, "user %q again (first on line %d)", name, n)
		}
		first[name] = num + 1
		out = append(out, Desired{Name: name, Password: pw})
	}
	return out, nil
}
