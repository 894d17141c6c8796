package certs

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Host tells the names a server certificate covers by default; tests give
// their own.
type Host interface {
	Hostname() (string, error)
	// Addrs are the host's addresses other than loopback.
	Addrs() ([]net.IP, error)
}

// LiveHost is the machine behind a System. Under a --root other than "/"
// (an image being built) the hostname comes from the image's /etc/hostname
// and there are no addresses: the build machine's addresses are not the
// device's.
type LiveHost struct{ Sys system.System }

func (h LiveHost) Hostname() (string, error) {
	if h.Sys.Root() != "/" {
		data, err := h.Sys.ReadFile("/etc/hostname")
		if err == nil && strings.TrimSpace(string(data)) != "" {
			return strings.TrimSpace(string(data)), nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return os.Hostname()
}

func (h LiveHost) Addrs() ([]net.IP, error) {
	if h.Sys.Root() != "/" {
		return nil, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		// Link-local addresses need a zone (fe80::1%eth0) that a SAN can't
		// carry, and change with the interface; clients don't use them.
		if ip := ipn.IP; !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsMulticast() && !ip.IsUnspecified() {
			ips = append(ips, ip)
		}
	}
	return ips, nil
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
