package systemd

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/conf"
)

// socketTables are the kernel's TCP socket tables of this network
// namespace (the broker's: mosqprov runs on its machine).
var socketTables = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// listenSocket is a TCP socket in the LISTEN state.
type listenSocket struct {
	IP   net.IP
	Port int
}

// readListening is every listening TCP socket of this network namespace,
// from the kernel's tables; ok is false when none of them could be read.
// They are the host's state, not a managed file, so they are read directly.
func readListening() (socks []listenSocket, ok bool) {
	for _, f := range socketTables {
		data, err := readSocketTable(f)
		if err != nil {
			continue
		}
		ok = true
		socks = append(socks, parseListening(data)...)
	}
	return socks, ok
}

// maxSocketTable caps a socket table's read: 150 bytes a socket, so 16 MiB
// is about 110,000 sockets. A busier machine's table is cut there, and its
// cut last line is skipped like any line that doesn't parse.
const maxSocketTable = 16 << 20

func readSocketTable(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxSocketTable))
}

// parseListening reads /proc/net/tcp or tcp6: after a header line, one
// socket per line, "sl local_address rem_address st ...", the local
// address as hex words in the host's byte order, a colon and the port in
// hex; st 0A is LISTEN.
func parseListening(data []byte) []listenSocket {
	var out []listenSocket
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[min(1, len(lines)):] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		host, port, found := strings.Cut(f[1], ":")
		p, err := strconv.ParseUint(port, 16, 16)
		if !found || err != nil {
			continue
		}
		raw, err := hex.DecodeString(host)
		if err != nil || (len(raw) != net.IPv4len && len(raw) != net.IPv6len) {
			continue
		}
		ip := make(net.IP, len(raw))
		for i := 0; i < len(raw); i += 4 {
			binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
		}
		out = append(out, listenSocket{IP: ip, Port: int(p)})
	}
	return out
}

// listeningIn reports whether one of socks takes connections where l's
// check connects (Addr): a socket on that address and port, or on the
// port of every IPv4 address (an IPv4 target) or of every address (::).
// sure is false when the tables can't tell: a bind address that is a name.
func (l Listener) listeningIn(socks []listenSocket) (up, sure bool) {
	target := net.ParseIP(conf.LocalHost(l.Bind))
	if target == nil {
		return false, false
	}
	for _, s := range socks {
		if s.Port != l.Port {
			continue
		}
		switch {
		case s.IP.Equal(target),
			s.IP.Equal(net.IPv4zero) && target.To4() != nil,
			s.IP.Equal(net.IPv6unspecified):
			return true, true
		}
	}
	return false, true
}
