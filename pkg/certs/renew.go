package certs

import (
	"io"
	"path"
	"time"

	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// RenewOptions is what `cert renew` (and cron) asks.
type RenewOptions struct {
	Paths       Paths
	RenewBefore int
	Rand        io.Reader
}

// Renew reissues every leaf issued by the local CA that is due within
// RenewBefore days, with the names and key type it has now. It never
// touches the CA (replacing it means every device must get the new
// ca.crt) and leaves an imported server certificate to whoever issued it.
func Renew(sys system.System, o RenewOptions) (Result, error) {
	var res Result
	if err := checkRenewWindow(o.RenewBefore, pki.ServerDays); err != nil {
		return res, err
	}
	ca, err := LoadCA(sys, o.Paths)
	if err != nil {
		return res, err
	}
	now := sys.Now()
	if left := pki.DaysLeft(ca.Cert, now); left < o.RenewBefore {
		res.Warn("the CA expires in %d days (%s) and is not renewed automatically: replace it with `mosqprov cert ca --force`, then give every device the new ca.crt", left, ca.Cert.NotAfter.Format(time.DateOnly))
	}

	if data, err := readOptional(sys, o.Paths.ServerCert); err != nil {
		return res, err
	} else if data == nil {
		res.Add(system.NewChange(whatServerCert, o.Paths.ServerCert, system.Noop, "none yet; create it with `mosqprov cert server`"))
	} else if cert, err := pki.ParseCertificate(data); err != nil || cert.CheckSignatureFrom(ca.Cert) != nil {
		res.Add(system.NewChange(whatServerCert, o.Paths.ServerCert, system.Noop, "not issued by this CA (imported?): renew it where it came from"))
	} else {
		// The CN first, so the reissued certificate reads the same.
		names := []string{cert.Subject.CommonName}
		names = append(names, pki.SANs(cert)...)
		r, err := EnsureServer(sys, ServerOptions{
			Paths: o.Paths, Names: names, KeyType: makeable(pki.KeyTypeOf(cert.PublicKey)),
			RenewBefore: o.RenewBefore, Rand: o.Rand,
		})
		if err != nil {
			return res, err
		}
		res.Merge(r)
	}

	names, err := clientNames(sys, o.Paths.ClientDir)
	if err != nil {
		return res, err
	}
	revoked := revokedSet(sys, o.Paths, ca.Cert)
	for _, name := range names {
		f := ClientFilesIn(path.Join(o.Paths.ClientDir, name), name)
		data, err := readOptional(sys, f.Cert)
		if err != nil {
			return res, err
		}
		if data == nil {
			continue
		}
		kt := pki.KeyType("")
		if cert, err := pki.ParseCertificate(data); err == nil {
			kt = makeable(pki.KeyTypeOf(cert.PublicKey))
			if revoked[cert.SerialNumber.Text(16)] {
				// A renewed certificate would have a new serial, not on the
				// list: renewing would undo the revocation.
				res.Add(system.NewChange("client "+name+" certificate", f.Cert, system.Noop, "revoked, not renewed"))
				continue
			}
		}
		r, err := EnsureClient(sys, ClientOptions{Paths: o.Paths, Name: name, KeyType: kt, RenewBefore: o.RenewBefore, Rand: o.Rand})
		if err != nil {
			return res, err
		}
		res.Merge(r)
	}
	// The CRL, when there is one, is re-signed well before its next update.
	crl, err := EnsureCRL(sys, CRLOptions{Paths: o.Paths, Rand: o.Rand})
	if err != nil {
		return res, err
	}
	res.Merge(crl.Result)
	return res, nil
}

// makeable is kt when mosqprov can make keys of that type, else "" (any
// type is kept; a reissued certificate gets the default).
func makeable(kt pki.KeyType) pki.KeyType {
	for _, k := range pki.KeyTypes {
		if k == kt {
			return kt
		}
	}
	return ""
}
