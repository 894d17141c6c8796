package nspawn

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBoot boots the cached tree of each suite and checks it is what the
// end-to-end tests assume: systemd is PID 1, the suite is the one asked
// for, mosquitto is not installed but apt knows it from the local
// repository, the network is the container's own (a port the host listens
// on is not reachable inside, one the container listens on is reachable
// only through its namespace), and stopping the container leaves no folder
// or cgroup behind.
func TestBoot(t *testing.T) {
	Require(t)
	for _, suite := range Suites {
		t.Run(suite, func(t *testing.T) { testBoot(t, suite) })
	}
}

func testBoot(t *testing.T, suite string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	image, err := Image(ctx, DefaultCacheDir, RecipeFor(suite), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	c := BootSuite(t, image, suite)
	out, err := c.Exec(ctx, "cat", "/proc/1/comm")
	if err != nil || strings.TrimSpace(out) != "systemd" {
		t.Fatalf("PID 1 in the container is %q (%v), want systemd", out, err)
	}
	codename := map[string]string{"bookworm": "12", "trixie": "13"}[suite]
	if out, _ := c.Exec(ctx, "cat", "/etc/debian_version"); !strings.HasPrefix(out, codename+".") {
		t.Fatalf("%s tree says Debian %q", suite, out)
	}
	if out, err := c.Exec(ctx, "dpkg-query", "-W", "mosquitto"); err == nil {
		t.Fatalf("mosquitto is already in the tree: %s", out)
	}
	version, err := c.RepoVersion("mosquitto")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Exec(ctx, "apt-cache", "policy", "mosquitto"); err != nil || !strings.Contains(out, "Candidate: "+version) || !strings.Contains(out, "file:"+LocalRepo) {
		t.Fatalf("apt in the container does not offer mosquitto %s from %s: %v\n%s", version, LocalRepo, err, out)
	}
	t.Logf("%s: mosquitto %s in %s", suite, version, LocalRepo)

	// The host listens; inside, the same address is refused.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	hostPort := host.Addr().(*net.TCPAddr).Port
	probe := func(port int) error {
		_, err := c.Exec(ctx, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port))
		return err
	}
	if probe(hostPort) == nil {
		t.Fatalf("the container reached the host's 127.0.0.1:%d: its network is the host's", hostPort)
	}
	// The container listens (a socket made in its namespace); the host's
	// loopback doesn't have it, the container's does.
	inside, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	insidePort := inside.Addr().(*net.TCPAddr).Port
	if err := probe(insidePort); err != nil {
		t.Fatalf("the container can't reach its own 127.0.0.1:%d: %v", insidePort, err)
	}
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", insidePort)); err == nil {
		conn.Close()
		t.Fatalf("the host reached the container's 127.0.0.1:%d", insidePort)
	}
	dir, cgs := c.Dir, append([]string(nil), c.cgs...)
	if len(cgs) == 0 {
		t.Fatal("container has no cgroup of its own")
	}
	c.Stop()
	for _, p := range append(cgs, dir) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind after Stop (%v)", p, err)
		}
	}
}

func TestRecipeKey(t *testing.T) {
	a := Recipe{Suite: "bookworm", Mirror: "http://m/debian", Include: []string{"systemd"}}
	b := a
	b.Include = []string{"systemd", "mosquitto"}
	if a.Key() == b.Key() {
		t.Fatal("different recipes share a cache key")
	}
	if a.Key() != (Recipe{Suite: "bookworm", Mirror: "http://m/debian", Include: []string{"systemd"}}).Key() {
		t.Fatal("the same recipe gets two keys")
	}
	// The next release's packages are part of the tree: a tree without them
	// is never reused for a recipe with them.
	c := a
	c.Next = &NextRelease{Suite: Forky, Repo: []string{"mosquitto"}}
	d := a
	d.Next = &NextRelease{Suite: Forky, Repo: []string{"mosquitto", "mosquitto-clients"}}
	if a.Key() == c.Key() || c.Key() == d.Key() {
		t.Fatal("recipes with and without the next release's packages share a cache key")
	}
}

// TestLockSerialises: while one holder has the boot lock, a second caller
// (another open file, as another test process would have) says it waits
// and gets the lock only once the first lets go.
func TestLockSerialises(t *testing.T) {
	path := t.TempDir() + "/boot.lock"
	first, err := takeLock(path, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan string, 2)
	got := make(chan error, 1)
	go func() {
		second, err := takeLock(path, func(f string, a ...any) { waiting <- fmt.Sprintf(f, a...) })
		if err == nil {
			second.Close()
		}
		got <- err
	}()
	select {
	case msg := <-waiting: // said before the second caller blocks
		if !strings.Contains(msg, "waiting for it to stop") {
			t.Fatalf("second caller said %q", msg)
		}
	case err := <-got:
		t.Fatalf("second caller got the lock while the first held it (%v)", err)
	}
	first.Close()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
