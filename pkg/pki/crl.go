package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// CRL lifetimes, in days.
const (
	// CRLDays is how long a CRL is valid (its next-update date). Once that
	// date passes, Mosquitto (OpenSSL) refuses every client certificate on
	// the listener, revoked or not (mosquitto issue 1826): a long validity,
	// re-signed well before its end, keeps one missed cron run harmless.
	CRLDays = 365
	// CRLRenewDays: `cert renew` and `apply` re-sign a CRL with fewer days
	// than this left, so a daily or weekly cron has months of chances.
	CRLRenewDays = 90
)

// Revoked is one revoked certificate: its serial and when it was revoked.
type Revoked struct {
	Serial *big.Int
	At     time.Time
}

// SignCRL makes a CRL of revoked signed by ca, numbered number, valid from
// now (backdated by clockSkew, like certificates, so a broker whose clock
// lags a little doesn't see it "not yet valid") for CRLDays. Entries are
// sorted by serial, so the same list gives the same content.
func SignCRL(rand io.Reader, now time.Time, ca *CA, number *big.Int, revoked []Revoked) ([]byte, *x509.RevocationList, error) {
	if number == nil || number.Sign() <= 0 {
		return nil, nil, errors.New("sign CRL: the CRL number must be positive")
	}
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At.UTC().Truncate(time.Second)})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].SerialNumber.Cmp(entries[j].SerialNumber) < 0 })
	tpl := &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now.Add(-clockSkew).UTC().Truncate(time.Second),
		NextUpdate:                now.AddDate(0, 0, CRLDays).UTC().Truncate(time.Second),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand, tpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CRL: %w", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), crl, nil
}

// MaxCRLSize caps a CRL read from disk: mosqprov's hold a few dozen
// entries (under 100 bytes each), so anything near this is not one of ours.
const MaxCRLSize = 1 << 20

// ParseCRL reads one PEM "X509 CRL" block and checks it is signed by ca
// (when ca is not nil).
func ParseCRL(data []byte, ca *x509.Certificate) (*x509.RevocationList, error) {
	if len(data) > MaxCRLSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxCRLSize)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "X509 CRL" {
		return nil, errors.New("no PEM X509 CRL block")
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return nil, err
	}
	if ca != nil {
		if err := crl.CheckSignatureFrom(ca); err != nil {
			return nil, fmt.Errorf("not signed by the CA: %w", err)
		}
	}
	return crl, nil
}

// RevokedSerials lists the CRL's entries.
func RevokedSerials(crl *x509.RevocationList) []Revoked {
	var out []Revoked
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, Revoked{Serial: e.SerialNumber, At: e.RevocationTime})
	}
	return out
}

// IsRevoked reports whether serial is on the CRL.
func IsRevoked(crl *x509.RevocationList, serial *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// CRLDaysLeft is the number of whole days until the CRL's next update.
func CRLDaysLeft(crl *x509.RevocationList, now time.Time) int {
	return int(crl.NextUpdate.Sub(now).Hours() / 24)
}

// ParseSerial reads a certificate serial number as people copy it: hex,
// upper or lower case, with or without a 0x prefix and colons between the
// bytes (openssl's `serial=4A3F...`, a browser's `4A:3F:...`, cert
// status's `4a3f...`). RFC 5280 §4.1.2.2: positive, at most 20 octets.
func ParseSerial(field, s string) (*big.Int, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(s, "serial="), "0x"), "0X")
	h = strings.ReplaceAll(h, ":", "")
	if h == "" {
		return nil, errs.Invalid(field, "empty serial number")
	}
	if strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
		return nil, errs.Invalid(field, "%q is not a hexadecimal serial number (as `openssl x509 -noout -serial` or `mosqprov cert status` prints it)", s)
	}
	n, _ := new(big.Int).SetString(h, 16)
	if n.Sign() <= 0 {
		return nil, errs.Invalid(field, "%q: a certificate serial number is positive", s)
	}
	if n.BitLen() > 20*8 {
		return nil, errs.Invalid(field, "%q is longer than 20 bytes, the most a certificate serial number holds (RFC 5280)", s)
	}
	return n, nil
}
