package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// ImportOptions is a server certificate made elsewhere (Let's Encrypt).
type ImportOptions struct {
	Paths Paths
	// CertPEM is the leaf, optionally followed by intermediates
	// (certbot's fullchain.pem); ChainPEM adds intermediates (chain.pem).
	CertPEM  []byte
	KeyPEM   []byte
	ChainPEM []byte
	// Roots the chain must end in; nil means the host's trust store plus
	// the local CA (so a mosqprov-issued certificate imports too).
	Roots *x509.CertPool
}

// Import checks that the key matches the certificate and that the chain is
// complete up to a trusted root, then installs leaf+intermediates as
// server.crt and the key as server.key with the broker's owner and mode.
// The broker's ca.crt (which verifies client certificates) stays the local
// CA's when there is one.
func Import(sys system.System, o ImportOptions) (Result, error) {
	var res Result
	certs, err := pki.ParseCertificates(o.CertPEM)
	if err != nil {
		return res, errs.Invalid("--cert", "%v", err)
	}
	key, err := pki.ParsePrivateKey(o.KeyPEM)
	if err != nil {
		return res, errs.Invalid("--key", "%v", err)
	}
	leaf := certs[0]
	if leaf.IsCA {
		return res, errs.Invalid("--cert", "%q is a CA certificate, not a server certificate", leaf.Subject.CommonName)
	}
	if !pki.KeyMatches(leaf, key) {
		return res, errs.Invalid("--key", "the key does not match the certificate %q", leaf.Subject.CommonName)
	}
	chain := certs[1:]
	if len(o.ChainPEM) > 0 {
		more, err := pki.ParseCertificates(o.ChainPEM)
		if err != nil {
			return res, errs.Invalid("--chain", "%v", err)
		}
		chain = append(chain, more...)
	}
	localCA, caErr := LoadCA(sys, o.Paths)
	roots := o.Roots
	if roots == nil {
		if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if caErr == nil {
			roots.AddCert(localCA.Cert)
		}
	}
	// A root in the chain file is trusted only if it is also in roots: the
	// point is that clients will be able to verify the chain.
	var intermediates []*x509.Certificate
	for _, c := range chain {
		if !selfSigned(c) {
			intermediates = append(intermediates, c)
		}
	}
	field := "--chain"
	if len(o.ChainPEM) == 0 {
		field = "--cert"
	}
	if err := pki.Verify(leaf, roots, intermediates, x509.ExtKeyUsageServerAuth, sys.Now()); err != nil {
		return res, errs.Invalid(field, "the chain is not complete or not trusted: %s (give the intermediates with --chain, or use fullchain.pem)", oneLine(err))
	}
	var out bytes.Buffer
	out.Write(pki.EncodeCertificate(leaf.Raw))
	for _, c := range intermediates {
		// Mosquitto reads certfile as a chain (SSL_CTX_use_certificate_chain_file),
		// so the intermediates go right after the leaf and clients get them.
		out.Write(pki.EncodeCertificate(c.Raw))
	}
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		return res, err
	}
	unlock, err := lockBrokerCerts(&res, sys, o.Paths)
	if err != nil {
		return res, err
	}
	defer unlock()
	files := serverFiles(&res, sys, o.Paths)
	if caErr == nil {
		// The listener's cafile (client certificates) stays the local CA.
		if err := write(&res, sys, whatBrokerCA, o.Paths.BrokerCA, pki.EncodeCertificate(localCA.Cert.Raw), publicAttr, ""); err != nil {
			return res, err
		}
	}
	// The same key bytes as on disk when it's the same key, so a repeated
	// import (certbot runs the hook on every renewal attempt) writes nothing.
	if old, err := readOptional(sys, o.Paths.ServerKey); err == nil && old != nil {
		if k, err := pki.ParsePrivateKey(old); err == nil && pki.KeyMatches(leaf, k) {
			keyPEM = old
		}
	}
	if err := files.write(&res, sys, keyPEM, out.Bytes(), "imported: "+describeLeaf(leaf)); err != nil {
		return res, err
	}
	reloadIfChanged(&res, o.Paths.BrokerCA, o.Paths.ServerKey, o.Paths.ServerCert)
	return res, nil
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// Export formats.
const (
	FormatPEM     = "pem"
	FormatDER     = "der"
	FormatCHeader = "c-header"
)

// Exported is the CA certificate in the format devices need.
type Exported struct {
	Format      string `json:"format"`
	Fingerprint string `json:"sha256_fingerprint"`
	Subject     string `json:"subject"`
	NotAfter    string `json:"not_after"`
	Data        []byte `json:"-"`
}

// Export reads the CA certificate (only the certificate: the key is never
// needed) and renders it as format.
func Export(sys system.System, p Paths, format string) (*Exported, error) {
	switch format {
	case FormatPEM, FormatDER, FormatCHeader:
	default:
		return nil, errs.Invalid("--format", "%q is not pem, der or c-header", format)
	}
	data, err := sys.ReadFile(p.CACert)
	if errors.Is(err, fs.ErrPermission) {
		// The CA folder is root-only; the broker's copy is public, so a
		// person without sudo can still hand ca.crt to a device.
		if b, berr := sys.ReadFile(p.BrokerCA); berr == nil {
			data, err = b, nil
		}
	}
	if err != nil {
		return nil, errs.Invalid(p.CACert, "can't read the CA certificate (create it with `mosqprov cert ca`): %v", errs.PathCause(err))
	}
	cert, err := pki.ParseCertificate(data)
	if err != nil {
		return nil, errs.Invalid(p.CACert, "%v", err)
	}
	e := &Exported{Format: format, Fingerprint: pki.Fingerprint(cert), Subject: cert.Subject.String(), NotAfter: cert.NotAfter.UTC().Format("2006-01-02T15:04:05Z")}
	switch format {
	case FormatPEM:
		e.Data = pki.EncodeCertificate(cert.Raw)
	case FormatDER:
		e.Data = cert.Raw
	case FormatCHeader:
		e.Data = pki.CHeader(cert, "mqtt_ca_cert")
	}
	return e, nil
}
