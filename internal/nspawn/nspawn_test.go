package nspawn

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBoot boots the cached tree and checks it is what the end-to-end tests
// assume: systemd is PID 1, mosquitto is not installed, and stopping the
// container leaves no folder or cgroup behind.
func TestBoot(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	image, err := Image(ctx, DefaultCacheDir, DefaultRecipe(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	c := Boot(t, image)
	out, err := c.Exec(ctx, "cat", "/proc/1/comm")
	if err != nil || strings.TrimSpace(out) != "systemd" {
		t.Fatalf("PID 1 in the container is %q (%v), want systemd", out, err)
	}
	if out, err := c.Exec(ctx, "dpkg-query", "-W", "mosquitto"); err == nil {
		t.Fatalf("mosquitto is already in the tree: %s", out)
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
