package certs

import (
	"net"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// Host tells the names a server certificate covers by default: a
// system.System is one (its Hostname and Addrs); tests give their own.
type Host interface {
	Hostname() (string, error)
	// Addrs are the host's addresses other than loopback.
	Addrs() ([]net.IP, error)
}

// DefaultNames are the names a server certificate covers when none are
// given: the host name, <short name>.local (what mDNS/Avahi announces, and
// what the article's readers type), localhost, 127.0.0.1, ::1 and the host's
// other addresses, so a client on the LAN can connect by any of them.
func DefaultNames(h Host) (names, ips []string, err error) {
	host, err := h.Hostname()
	if err != nil {
		return nil, nil, err
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if err := pki.ValidateDNSName("hostname", host); err != nil {
		return nil, nil, errs.Invalid("hostname", "%q is not a valid DNS name; give the names with --name", host)
	}
	short, _, _ := strings.Cut(host, ".")
	names = append(names, host)
	if short != host {
		names = append(names, short)
	}
	names = append(names, short+".local", "localhost")
	ips = []string{"127.0.0.1", "::1"}
	addrs, err := h.Addrs()
	if err != nil {
		return nil, nil, err
	}
	for _, a := range addrs {
		ips = append(ips, a.String())
	}
	return names, ips, nil
}
