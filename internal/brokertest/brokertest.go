// Package brokertest starts the real mosquitto broker on loopback high ports
// for tests, and drives the real mosquitto_pub/mosquitto_sub clients.
package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Require fails the test when the broker or its clients are missing: a test
// that checks a file against the real broker must not pass without it.
// Install them with: apt-get install -y mosquitto mosquitto-clients
func Require(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"mosquitto", "mosquitto_pub", "mosquitto_sub"} {
		if _, err := lookPath(bin); err != nil {
			t.Fatalf("%s not found: install it with `apt-get install -y mosquitto mosquitto-clients`", bin)
		}
	}
}

// RequireBrokerUser is Require for a test whose files must be owned by the
// broker's account, as on a machine where the mosquitto package is installed.
func RequireBrokerUser(t testing.TB) {
	t.Helper()
	Require(t)
	if _, err := user.Lookup("mosquitto"); err != nil {
		t.Fatalf("this test needs the mosquitto user: apt-get install -y mosquitto")
	}
}

// Rooted is conf, a configuration mosqprov wrote under root, with its
// /etc/mosquitto/ paths moved under root, so a test's broker reads the
// test's files.
func Rooted(root, conf string) string {
	return strings.ReplaceAll(conf, " /etc/mosquitto/", " "+root+"/etc/mosquitto/")
}

func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	// /usr/sbin is not on every PATH (sudo-less shells, go test under CI).
	p := filepath.Join("/usr/sbin", bin)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found", bin)
}

// Root is a target root (a Dir) holding this machine's accounts, as an
// image has once mosquitto is installed, so files written under it get the
// owners they get on a Pi.
func Root(t testing.TB) string {
	t.Helper()
	root := Dir(t)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Dir makes a folder the broker can read after it drops root to the
// mosquitto user: t.TempDir() is 0700 and so is its parent.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mosqprov-broker-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	// The kernel may hand out a port again as soon as it is closed, so a
	// test asking for several (one per listener) could get one twice and its
	// broker would fail with "Address already in use": never repeat one.
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
}

// handedOut is every port FreePort has returned in this test binary.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Broker is a running mosquitto.
type Broker struct {
	Conf string
	Log  string
	cmd  *exec.Cmd
	done chan error
	out  lockedBuffer
	// exited and exitErr are the end Exited saw.
	exited  bool
	exitErr error
}

// lockedBuffer is the broker's stdout and stderr, readable while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Output is what the broker wrote to stdout and stderr so far (its log,
// with `log_dest stderr`).
func (b *Broker) Output() string { return b.out.String() }

// Start writes conf to a file in dir (with a log_dest file line appended
// so failures can be read) and runs mosquitto on it, waiting until every port
// in ports accepts TCP connections. The broker is stopped at cleanup.
func Start(t testing.TB, dir, conf string, ports ...int) *Broker {
	t.Helper()
	b, err := StartErr(dir, conf, ports...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// StartErr is Start that returns the failure (for tests that expect the
// broker to refuse a config) instead of failing the test.
func StartErr(dir, conf string, ports ...int) (*Broker, error) {
	return Mosquitto{Suite: "host"}.StartErr(dir, conf, ports...)
}

// StartFile runs mosquitto on a complete configuration file as it is (one
// with its own `log_dest file log` line, which the broker refuses twice),
// waiting like Start. The broker is stopped at cleanup.
func StartFile(t testing.TB, conf, log string, ports ...int) *Broker {
	t.Helper()
	return Mosquitto{Suite: "host"}.StartFile(t, conf, log, ports...)
}

// run starts the broker on b.Conf and waits until every port accepts TCP
// connections; it stops the broker when it doesn't.
func (b *Broker) run(m Mosquitto, ports []int) error {
	out := &b.out
	cmd, err := m.Command(context.Background(), "mosquitto", "-c", b.Conf)
	if err != nil {
		return err
	}
	b.cmd = cmd
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		return err
	}
	go func() { b.done <- b.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range ports {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-b.done:
				return fmt.Errorf("mosquitto exited (%v): %s\nlog:\n%s", err, out.String(), b.ReadLog())
			default:
			}
			if time.Now().After(deadline) {
				b.Stop()
				return fmt.Errorf("mosquitto did not listen on %d: %s\nlog:\n%s", port, out.String(), b.ReadLog())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// ReadLog returns the broker's log so far.
func (b *Broker) ReadLog() string {
	data, _ := os.ReadFile(b.Log)
	return string(data)
}

// Reload sends SIGHUP, as systemctl reload does. The broker opens its
// sockets before it installs its signal handlers, and SIGHUP's default
// action ends a process, so Reload first waits (up to 5 s) for the log's
// "running" line; under systemd, Type=notify waits for the same point.
func (b *Broker) Reload() error {
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(b.ReadLog(), " running") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return b.cmd.Process.Signal(hangup)
}

// Exited reports whether the broker process has ended on its own (2.1
// exits on a reload it can't take), and its exit error.
func (b *Broker) Exited() (bool, error) {
	if b.exited {
		return true, b.exitErr
	}
	if b.cmd == nil {
		return true, nil
	}
	select {
	case err := <-b.done:
		b.exited, b.exitErr, b.cmd = true, err, nil
		return true, err
	default:
		return false, nil
	}
}

// Shutdown ends the broker the way systemctl stop does (SIGTERM), so it
// saves its persistence database first, and waits up to 10 s for it.
func (b *Broker) Shutdown() error {
	if b.cmd == nil || b.cmd.Process == nil {
		return nil
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-b.done:
		b.cmd = nil
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("mosquitto did not stop within 10 s of SIGTERM")
	}
}

// Stop ends the broker.
func (b *Broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Kill()
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
	}
	b.cmd = nil
}

// Client runs the real mosquitto_pub / mosquitto_sub. Args are the client's
// own flags; the password goes through -P here because these are throwaway
// test credentials (mosqprov itself never puts a password in argv).
type Client struct {
	Host     string
	Port     int
	User     string
	Password string
	// Extra are further flags: --cafile, --cert, --key, -V mqttv5...
	Extra []string
	// NetNS, when set, is the network namespace the client runs in (a
	// container's /proc/PID/ns/net, see nspawn.Container.NetNS), through
	// nsenter: the broker's ports are in that namespace, not on the host's.
	NetNS string
}

// command is the client bin with args, inside NetNS when one is set.
func (c Client) command(ctx context.Context, bin string, args []string) *exec.Cmd {
	if c.NetNS != "" {
		return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + c.NetNS, "--", bin}, args...)...)
	}
	return exec.CommandContext(ctx, bin, args...)
}

func (c Client) args() []string {
	host := c.Host
	if host == "" {
		host = "127.0.0.1"
	}
	args := []string{"-h", host, "-p", fmt.Sprint(c.Port)}
	if c.User != "" {
		args = append(args, "-u", c.User)
	}
	if c.Password != "" {
		args = append(args, "-P", c.Password)
	}
	return append(args, c.Extra...)
}

// Publish sends one message and returns the client's error output on failure.
func (c Client) Publish(topic, message string) error {
	bin, err := lookPath("mosquitto_pub")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := append(c.args(), "-t", topic, "-m", message, "-q", "1")
	out, err := c.command(ctx, bin, args).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_pub %s: %v: %s", strings.Join(redact(args), " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Subscribe waits for up to count messages on topic for at most wait and
// returns what arrived. It is ready to receive when it returns the ready
// channel... simpler: callers start it, then publish; see Roundtrip.
func (c Client) Subscribe(topic string, count int, wait time.Duration) (*Subscription, error) {
	bin, err := lookPath("mosquitto_sub")
	if err != nil {
		return nil, err
	}
	args := append(c.args(), "-t", topic, "-C", fmt.Sprint(count), "-W", fmt.Sprint(int(wait.Seconds())), "-q", "1", "-v")
	s := &Subscription{done: make(chan struct{})}
	s.cmd = c.command(context.Background(), bin, args)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.errOut
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	return s, nil
}

// Subscription is a running mosquitto_sub.
type Subscription struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errOut bytes.Buffer
	err    error
	done   chan struct{}
}

// Done is closed once the subscriber has ended (its count reached or its
// wait over).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Wait returns the lines received ("topic payload") once the subscriber ends.
func (s *Subscription) Wait() ([]string, error) {
	<-s.done
	text := strings.TrimSpace(s.out.String())
	var lines []string
	if text != "" {
		lines = strings.Split(text, "\n")
	}
	if s.err != nil && len(lines) == 0 {
		return nil, fmt.Errorf("mosquitto_sub: %v: %s", s.err, strings.TrimSpace(s.errOut.String()))
	}
	return lines, nil
}

// Roundtrip subscribes as sub, publishes as pub and reports whether the
// message arrived. A subscriber that can't connect is an error; a message
// that doesn't arrive (an ACL denial) is delivered=false.
func Roundtrip(sub, pub Client, topic, message string) (delivered bool, err error) {
	s, err := sub.Subscribe(topic, 1, 3*time.Second)
	if err != nil {
		return false, err
	}
	// mosquitto_sub has no "subscribed" signal; give it time to SUBACK.
	time.Sleep(300 * time.Millisecond)
	select {
	case <-s.done:
		_, err := s.Wait()
		return false, fmt.Errorf("subscriber ended early: %v", err)
	default:
	}
	if err := pub.Publish(topic, message); err != nil {
		s.cmd.Process.Kill()
		return false, err
	}
	lines, err := s.Wait()
	if err != nil && len(lines) == 0 && !strings.Contains(err.Error(), "exit status 27") {
		// mosquitto_sub -W exits 27 on timeout: not delivered, not an error.
		return false, err
	}
	for _, l := range lines {
		if l == topic+" "+message {
			return true, nil
		}
	}
	return false, nil
}

func redact(args []string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if i > 0 && out[i-1] == "-P" {
			out[i] = "***"
		}
	}
	return out
}
