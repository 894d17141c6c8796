package systemd

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"
)

// hexIP writes ip as the kernel's tables do: 32-bit words in the host's
// byte order.
func hexIP(ip net.IP) string {
	out := ""
	for i := 0; i < len(ip); i += 4 {
		out += fmt.Sprintf("%08X", binary.NativeEndian.Uint32(ip[i:]))
	}
	return out
}

// The kernel's table format, with sockets in LISTEN (0A) and other states.
func TestParseListening(t *testing.T) {
	v4 := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		fmt.Sprintf("   0: %s:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 1 1 0 100 0 0 10 0\n", hexIP(net.IPv4(127, 0, 0, 1).To4())) +
		fmt.Sprintf("   1: %s:22B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 2 1 0 100 0 0 10 0\n", hexIP(net.IPv4zero.To4())) +
		fmt.Sprintf("   2: %s:1F90 %s:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n", hexIP(net.IPv4(192, 168, 1, 5).To4()), hexIP(net.IPv4(192, 168, 1, 9).To4()))
	v6 := "  sl  local_address                         remote_address                        st\n" +
		fmt.Sprintf("   0: %s:22B3 00000000000000000000000000000000:0000 0A\n", hexIP(net.IPv6unspecified)) +
		fmt.Sprintf("   1: %s:0050 00000000000000000000000000000000:0000 0A\n", hexIP(net.IPv6loopback))
	socks := append(parseListening([]byte(v4)), parseListening([]byte(v6))...)
	want := []string{"127.0.0.1:1883", "0.0.0.0:8883", "[::]:8883", "[::1]:80"}
	if len(socks) != len(want) {
		t.Fatalf("got %v, want %v", socks, want)
	}
	for i, s := range socks {
		if got := net.JoinHostPort(s.IP.String(), fmt.Sprint(s.Port)); got != want[i] {
			t.Errorf("socket %d: %s, want %s", i, got, want[i])
		}
	}
	if got := parseListening(nil); len(got) != 0 {
		t.Errorf("an empty table: %v", got)
	}

	for _, c := range []struct {
		l           Listener
		up, sure    bool
		socks       []listenSocket
		whatItMeans string
	}{
		{Listener{Port: 1883, Bind: "127.0.0.1"}, true, true, socks, "the address itself"},
		{Listener{Port: 1883}, true, true, socks, "every interface: checked on loopback"},
		{Listener{Port: 1883, Bind: "::1"}, false, true, socks, "IPv4 loopback only"},
		{Listener{Port: 8883, Bind: "10.0.0.2"}, true, true, socks, "0.0.0.0 takes every IPv4 address"},
		{Listener{Port: 8883, Bind: "::1"}, true, true, socks, ":: takes every address"},
		{Listener{Port: 80, Bind: "::1"}, true, true, socks, "IPv6 loopback"},
		{Listener{Port: 80}, false, true, socks, "127.0.0.1 is not ::1"},
		{Listener{Port: 9443}, false, true, socks, "nothing on the port"},
		{Listener{Port: 1883, Bind: "pi.local"}, false, false, socks, "a name: the tables can't tell"},
		{Listener{Port: 1883, Bind: "127.0.0.1"}, true, true, []listenSocket{{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1883}}, "an IPv4-mapped address"},
	} {
		up, sure := c.l.listeningIn(c.socks)
		if up != c.up || sure != c.sure {
			t.Errorf("%+v (%s): up=%v sure=%v, want %v %v", c.l, c.whatItMeans, up, sure, c.up, c.sure)
		}
	}
}

// The machine's own tables show a socket this test listens on, and not
// one it closed; dialAll agrees without connecting.
func TestListeningOnThisMachine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	socks, ok := readListening()
	if !ok {
		t.Skip("no /proc/net/tcp here: dialAll dials")
	}
	if up, sure := (Listener{Port: port, Bind: "127.0.0.1"}).listeningIn(socks); !up || !sure {
		t.Fatalf("the kernel's tables don't show 127.0.0.1:%d listening", port)
	}
	if err := dialAll(context.Background(), []Listener{{Port: port, Bind: "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	closed := freePort(t)
	if err := dialAll(context.Background(), []Listener{{Port: closed}}); err == nil {
		t.Fatalf("port %d, closed, is reported up", closed)
	}
	// A connection dialAll made would wait in the listener's queue.
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(300 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Fatal("dialAll connected to the listener: the broker would log the connection")
	}
}
