package spec

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// SerialPrefix marks a `revoked:` entry given by serial number
// ("serial:4a3f..."), for a certificate the CA issued that is not in the
// clients folder. Client names can't hold a colon, so the two never meet.
const SerialPrefix = "serial:"

// RevokedSerial is a `revoked:` entry given by serial number.
type RevokedSerial struct {
	// Field is where it stands ("revoked[2]").
	Field  string
	Serial *big.Int
}

// RevokedNames are the `revoked:` entries that name a client.
func (s *Spec) RevokedNames() []string {
	var out []string
	for _, r := range s.Revoked {
		if !strings.HasPrefix(r, SerialPrefix) {
			out = append(out, r)
		}
	}
	return out
}

// RevokedSerials are the `revoked:` entries given by serial number (valid
// once Validate passed).
func (s *Spec) RevokedSerials() []RevokedSerial {
	var out []RevokedSerial
	for i, r := range s.Revoked {
		if h, ok := strings.CutPrefix(r, SerialPrefix); ok {
			f := fmt.Sprintf("revoked[%d]", i)
			if n, err := pki.ParseSerial(f, h); err == nil {
				out = append(out, RevokedSerial{Field: f, Serial: n})
			}
		}
	}
	return out
}

// validateRevoked checks the revoked entries: client names as `cert
// client` takes them, or serial:HEX; each once; and a mutual-TLS listener
// to check them.
func (s *Spec) validateRevoked() (string, error) {
	seen := map[string]int{}
	for i, entry := range s.Revoked {
		f := fmt.Sprintf("revoked[%d]", i)
		key := entry
		if h, ok := strings.CutPrefix(entry, SerialPrefix); ok {
			n, err := pki.ParseSerial(f, h)
			if err != nil {
				return f, err
			}
			key = SerialPrefix + n.Text(16)
		} else if err := refield(f, pki.ValidateClientName(f, entry)); err != nil {
			return f, err
		}
		if j, dup := seen[key]; dup {
			return f, errs.Invalid(f, "%q is already listed as revoked[%d]", entry, j)
		}
		seen[key] = i
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
