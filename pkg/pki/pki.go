// Package pki makes the certificates a Mosquitto broker and its clients need:
// a private CA, server certificates with subjectAltNames, client certificates
// for mutual TLS. It only computes: every function takes its randomness and
// its clock and returns PEM bytes, so pkg/certs decides what is written where.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// KeyType names a key algorithm and size the way the --key-type flag spells it.
type KeyType string

const (
	// RSA2048 is the default: what the article uses, and what old
	// microcontroller TLS stacks (ESP8266 BearSSL, older mbedTLS builds) handle.
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
)

// KeyTypes lists the supported key types in the order help text shows them.
var KeyTypes = []KeyType{RSA2048, RSA3072, RSA4096, ECDSAP256, ECDSAP384}

// ParseKeyType checks a --key-type value.
func ParseKeyType(field, s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if string(k) == s {
			return k, nil
		}
	}
	return "", errs.Invalid(field, "%q is not a key type (one of rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384)", s)
}

// KeyTypeOf names the key type of a public key ("rsa-1024" and the like for
// sizes mosqprov doesn't make itself, so status can still show them).
func KeyTypeOf(pub crypto.PublicKey) KeyType {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeyType(fmt.Sprintf("rsa-%d", k.N.BitLen()))
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256
		case elliptic.P384():
			return ECDSAP384
		case elliptic.P521():
			return "ecdsa-p521"
		}
		return "ecdsa"
	case ed25519.PublicKey:
		return "ed25519"
	}
	return "unknown"
}

// GenerateKey makes a private key of type kt. Since Go 1.26 key generation
// always uses the system's secure source (tests make it deterministic with
// testing/cryptotest), so rand is passed only where Go still honours it.
func GenerateKey(rand io.Reader, kt KeyType) (crypto.Signer, error) {
	switch kt {
	case RSA2048:
		return rsa.GenerateKey(rand, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand, 4096)
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand)
	}
	return nil, fmt.Errorf("generate key: unsupported key type %q", kt)
}

// serialNumber is 128 random bits: unpredictable serials are what the CA/B
// Forum asks of public CAs (at least 64 bits) and cost nothing here.
func serialNumber(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("make serial number: %w", err)
	}
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		return nil, errors.New("make serial number: the random source returned zeros")
	}
	return n, nil
}

// subjectKeyID is the SHA-1 of the subject public key bits (RFC 5280
// 4.2.1.2, method 1), which is what openssl computes too, so tools that
// match AKID to SKID agree with us.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var spki struct {
		Algorithm        pkix.AlgorithmIdentifier
		SubjectPublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	sum := sha1.Sum(spki.SubjectPublicKey.Bytes)
	return sum[:], nil
}

// Validity limits, in days.
const (
	// CADays is the CA's lifetime: devices carry ca.crt for years, and
	// replacing it means touching every one of them.
	CADays = 3650
	// ServerDays is the default and the maximum for server certificates:
	// Apple's platforms reject TLS server certificates valid for more than 825
	// days (https://support.apple.com/en-us/103769, "Requirements for trusted
	// certificates in iOS 13 and macOS 10.15"), private CAs included.
	ServerDays = 825
	// ClientDays is the default for client certificates (the same limit keeps
	// a lost device's certificate from living forever).
	ClientDays = 825
	// MaxClientDays is as long as the CA itself lives.
	MaxClientDays = CADays
)

// clockSkew backdates NotBefore: a device whose clock lags the broker's by
// a few minutes must not see a certificate "not yet valid".
const clockSkew = time.Hour

// notBefore is when a certificate issued at now starts: backdated by
// clockSkew, in whole seconds (what X.509 stores).
func notBefore(now time.Time) time.Time { return now.UTC().Truncate(time.Second).Add(-clockSkew) }

// validUntil is the NotAfter of a certificate of days issued at now: exactly
// days × 24 hours after its NotBefore, so the span a client checks (Apple's
// 825-day rule is on NotAfter − NotBefore) is the documented one, not one
// backdated hour more.
func validUntil(now time.Time, days int) time.Time {
	return notBefore(now).Add(time.Duration(days) * 24 * time.Hour)
}

// CARequest describes a new CA.
type CARequest struct {
	CommonName string
	KeyType    KeyType
	// Key, when set, is used instead of a new key of KeyType: it recovers a
	// CA whose creation was interrupted after its key was written.
	Key crypto.Signer
}

// Issued is a certificate and its private key, PEM encoded.
type Issued struct {
	CertPEM []byte
	KeyPEM  []byte
	Cert    *x509.Certificate
	Key     crypto.Signer
}

// NewCA makes a self-signed CA: CA:TRUE (critical) with path length 0, so
// it signs leaves only and can't be used to make another CA; keyUsage
// certSign and cRLSign; a subject key id; ten years.
func NewCA(rand io.Reader, now time.Time, req CARequest) (*Issued, error) {
	if err := ValidateCommonName("--ca-name", req.CommonName); err != nil {
		return nil, err
	}
	key := req.Key
	if key == nil {
		var err error
		if key, err = GenerateKey(rand, req.KeyType); err != nil {
			return nil, err
		}
	}
	tpl, err := baseTemplate(rand, now, validUntil(now, CADays), key, req.CommonName)
	if err != nil {
		return nil, err
	}
	tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	tpl.IsCA = true
	tpl.MaxPathLen = 0
	tpl.MaxPathLenZero = true
	return sign(rand, tpl, tpl, key, key)
}

// CA is a loaded CA: its certificate and the key that signs with it.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LoadCA parses ca.crt and ca.key and checks they belong together and that
// the certificate is a CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: not a CA (basicConstraints CA:FALSE)")
	}
	if !KeyMatches(cert, key) {
		return nil, errors.New("the CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ServerRequest describes a server certificate. Names are DNS names or IP
// addresses (either may be given as a name, as mkcert does); IPs must be IPs.
type ServerRequest struct {
	Names   []string
	IPs     []string
	KeyType KeyType
	Days    int
}

// IssueServer makes a server certificate signed by ca: every name as a
// subjectAltName (DNS or IP), the first as CN for tools that still show
// it, extKeyUsage serverAuth, AKID/SKID. Modern TLS clients (Go, Python,
// Chromium, Android, iOS) match the hostname against the SANs only.
func IssueServer(rand io.Reader, now time.Time, ca *CA, req ServerRequest) (*Issued, error) {
	dns, ips, err := ParseNames(req.Names, req.IPs)
	if err != nil {
		return nil, err
	}
	if len(dns)+len(ips) == 0 {
		return nil, errs.Invalid("--name", "a server certificate needs at least one name or IP")
	}
	if err := CheckDays("--days", req.Days, ServerDays); err != nil {
		return nil, err
	}
	key, err := GenerateKey(rand, req.KeyType)
	if err != nil {
		return nil, err
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		// RSA key exchange (TLS 1.2 non-ECDHE suites, still offered by some
		// embedded stacks) encrypts to the key: it needs keyEncipherment.
		usage |= x509.KeyUsageKeyEncipherment
	}
	// The CN is the first name asked for (names before IPs), as people read it.
	var cn string
	if len(req.Names) > 0 {
		cn = normalizeName(req.Names[0])
	} else {
		cn = ips[0].String()
	}
	tpl, err := leafTemplate(rand, now, ca, key, cn, req.Days)
	if err != nil {
		return nil, err
	}
	tpl.KeyUsage = usage
	tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tpl.DNSNames = dns
	tpl.IPAddresses = ips
	return sign(rand, tpl, ca.Cert, key, ca.Key)
}

// ClientRequest describes a client certificate for mutual TLS.
type ClientRequest struct {
	Name    string
	KeyType KeyType
	Days    int
}

// IssueClient makes a client certificate with CN=Name: with
// use_identity_as_username the broker takes the CN as the user name.
func IssueClient(rand io.Reader, now time.Time, ca *CA, req ClientRequest) (*Issued, error) {
	if err := ValidateClientName("NAME", req.Name); err != nil {
		return nil, err
	}
	if err := CheckDays("--days", req.Days, MaxClientDays); err != nil {
		return nil, err
	}
	key, err := GenerateKey(rand, req.KeyType)
	if err != nil {
		return nil, err
	}
	tpl, err := leafTemplate(rand, now, ca, key, req.Name, req.Days)
	if err != nil {
		return nil, err
	}
	tpl.KeyUsage = x509.KeyUsageDigitalSignature
	tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return sign(rand, tpl, ca.Cert, key, ca.Key)
}

// CheckDays checks a validity in days against 1..max.
func CheckDays(field string, days, max int) error {
	if days < 1 || days > max {
		return errs.Invalid(field, "%d is out of range (1 to %d days)", days, max)
	}
	return nil
}

// baseTemplate is what every certificate here has: a random serial, CN,
// validity from now (backdated by clockSkew) to notAfter, basic constraints
// (CA:FALSE unless the caller says otherwise) and a subject key id.
func baseTemplate(rand io.Reader, now, notAfter time.Time, key crypto.Signer, cn string) (*x509.Certificate, error) {
	serial, err := serialNumber(rand)
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore(now),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		SubjectKeyId:          skid,
	}, nil
}

func leafTemplate(rand io.Reader, now time.Time, ca *CA, key crypto.Signer, cn string, days int) (*x509.Certificate, error) {
	notAfter := validUntil(now, days)
	// A leaf can't be trusted past its CA; saying so in the certificate keeps
	// status and renewal honest about when it really stops working.
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tpl, err := baseTemplate(rand, now, notAfter, key, cn)
	if err != nil {
		return nil, err
	}
	tpl.AuthorityKeyId = ca.Cert.SubjectKeyId
	return tpl, nil
}

func sign(rand io.Reader, tpl, parent *x509.Certificate, key, parentKey crypto.Signer) (*Issued, error) {
	der, err := x509.CreateCertificate(rand, tpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", tpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	keyPEM, err := EncodePrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{CertPEM: EncodeCertificate(der), KeyPEM: keyPEM, Cert: cert, Key: key}, nil
}

// ParseNames sorts names into DNS names and IP addresses, validating each,
// dropping duplicates and keeping the order given. ips must all be IPs.
func ParseNames(names, ips []string) ([]string, []net.IP, error) {
	var dns []string
	var addrs []net.IP
	seen := map[string]bool{}
	addIP := func(ip net.IP) {
		if !seen[ip.String()] {
			seen[ip.String()] = true
			addrs = append(addrs, ip)
		}
	}
	for _, n := range names {
		if ip := parseIP(n); ip != nil {
			addIP(ip)
			continue
		}
		if err := ValidateDNSName("--name", n); err != nil {
			return nil, nil, err
		}
		n = normalizeName(n)
		if !seen[n] {
			seen[n] = true
			dns = append(dns, n)
		}
	}
	for _, s := range ips {
		ip := parseIP(s)
		if ip == nil {
			return nil, nil, errs.Invalid("--ip", "%q is not an IP address", s)
		}
		addIP(ip)
	}
	return dns, addrs, nil
}

// parseIP accepts IPv4 and IPv6 literals; an IPv4 address is kept in its
// 4-byte form so the SAN is 4 bytes, as clients expect.
func parseIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil {
		return nil
	}
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}
