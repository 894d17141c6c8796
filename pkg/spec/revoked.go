package spec

import (
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// validateRevoked checks the revoked client names: client names as `cert
// client` takes them, each once, and a mutual-TLS listener to check them.
func (s *Spec) validateRevoked() (string, error) {
	seen := map[string]int{}
	for i, name := range s.Revoked {
		f := fmt.Sprintf("revoked[%d]", i)
		if err := refield(f, pki.ValidateClientName(f, name)); err != nil {
			return f, err
		}
		if j, dup := seen[name]; dup {
			return f, errs.Invalid(f, "%q is already listed as revoked[%d]", name, j)
		}
		seen[name] = i
	}
	if len(s.Revoked) == 0 {
		return "", nil
	}
	for _, l := range s.Listeners {
		if l.MutualTLS {
			return "", nil
		}
	}
	return "revoked", errs.Invalid("revoked", "no listener has mutual_tls: true, so no client logs in with a certificate and there is nothing to revoke")
}
