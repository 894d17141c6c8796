package nspawn

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NetNS is the container's network namespace, for a host program that
// must reach the container's ports (brokertest.Client.NetNS): the container
// has a private network, so its ports are not on the host's loopback.
func (c *Container) NetNS() string { return fmt.Sprintf("/proc/%d/ns/net", c.Leader) }

// Listen opens a TCP listener inside the container's network namespace
// (from the host, so a test can hold a port the container's broker then
// can't open).
func (c *Container) Listen(addr string) (net.Listener, error) {
	var l net.Listener
	err := c.inNetNS(func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// DialTimeout connects from the host to addr in the container's network
// (its 127.0.0.1 is the container's loopback).
func (c *Container) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := c.inNetNS(func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return conn, err
}

// inNetNS runs fn on a thread switched into the container's network
// namespace: the sockets fn makes belong to that namespace for good, after
// the thread switches back.
func (c *Container) inNetNS(fn func() error) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open(c.NetNS())
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", c.NetNS(), err)
	}
	fnErr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread is stuck in the container's namespace: it stays
		// locked, so it ends with this goroutine instead of serving others.
		return fmt.Errorf("setns back to the host: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// RepoVersion is the version of pkg in the tree's LocalRepo, the one apt
// inside the container installs.
func (c *Container) RepoVersion(pkg string) (string, error) {
	return c.RepoVersionIn(LocalRepo, pkg)
}

// RepoVersionIn is the version of pkg in the tree's repository repo
// (LocalRepo or NextRepo).
func (c *Container) RepoVersionIn(repo, pkg string) (string, error) {
	f, err := os.Open(c.Path(filepath.Join(repo, "Packages")))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(line, "Version: "); ok && name == pkg {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s is not in %s", pkg, repo)
}

// HoldHostPort makes something listen on the host's 127.0.0.1:port for the
// rest of the test, so a test proves it does not reach the host's port: a
// client that did would be accepted and dropped at once, not get an MQTT
// answer. When the port is already taken, by a broker or anything else,
// that proves the same, and it says so.
func HoldHostPort(t testing.TB, port int) {
	t.Helper()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if errors.Is(err, syscall.EADDRINUSE) {
		t.Logf("the host's 127.0.0.1:%d is already taken by another program: the test runs beside it", port)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a dummy listener holds the host's 127.0.0.1:%d for this test", port)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
}
