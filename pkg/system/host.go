package system

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
)

// Hostname is the target's host name. Under a root other than "/" (an image
// being built) it is the image's /etc/hostname when that names one: the
// build machine's name is not the device's.
func (s *Real) Hostname() (string, error) {
	if s.root != "/" {
		data, err := s.ReadFile("/etc/hostname")
		if err == nil && strings.TrimSpace(string(data)) != "" {
			return strings.TrimSpace(string(data)), nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return os.Hostname()
}

// Addrs are the target's addresses clients can use: not loopback, and not
// link-local, whose zone (fe80::1%eth0) a certificate's SAN can't carry
// and which change with the interface. Under a root other than "/" there
// are none: the build machine's addresses are not the device's.
func (s *Real) Addrs() ([]net.IP, error) {
	if s.root != "/" {
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
		if ip := ipn.IP; !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsMulticast() && !ip.IsUnspecified() {
			ips = append(ips, ip)
		}
	}
	return ips, nil
}

func (d *DryRun) Hostname() (string, error) { return d.host.Hostname() }
func (d *DryRun) Addrs() ([]net.IP, error)  { return d.host.Addrs() }
