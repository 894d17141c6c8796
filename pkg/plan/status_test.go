package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/status"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Turning status_reader off takes away everything apply added for the
// status identity: its password file line, its ACL rules and its secret;
// plan shows it first; a second apply changes nothing; and the real
// broker, reloaded as apply does, no longer lets the identity log in,
// while the spec's own user keeps working.
func TestStatusReaderOff(t *testing.T) {
	brokertest.Require(t)
	root, port := newRoot(t), brokertest.FreePort(t)
	ctx := context.Background()
	load := func(on bool) *spec.Spec {
		t.Helper()
		text := fmt.Sprintf(`listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
users:
  - {name: alice, password_env: ALICE}
acl:
  - {user: alice, readwrite: ["home/#"]}
broker: {sys_interval: 1}
package: {install: false}
service: {enable: false}
`, port)
		if on {
			text += "status_reader: true\n"
		}
		s, err := spec.Parse("broker.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	o := Options{LookupEnv: func(k string) (string, bool) { return "alice-secret", k == "ALICE" }}
	read := func(p string) string {
		data, _ := os.ReadFile(filepath.Join(root, p))
		return string(data)
	}

	if _, err := Converge(ctx, realSys(root), load(true), o); err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(read(status.SecretFile))
	if len(secret) != 64 || !strings.Contains(read(layout.PasswordFile), status.User+":") || !strings.Contains(read(layout.ACLFile), "user "+status.User+"\n") {
		t.Fatalf("status identity not made: secret %d chars, passwd:\n%s\nacl:\n%s", len(secret), read(layout.PasswordFile), read(layout.ACLFile))
	}
	conf := strings.ReplaceAll(read(layout.DropIn), " /etc/mosquitto/", " "+root+"/etc/mosquitto/")
	b := brokertest.Start(t, root, conf, port)
	login := func() error {
		opts := mqtt.NewClientOptions().SetUsername(status.User).SetPassword(secret)
		_, err := status.Read(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", port), opts, 100*time.Millisecond)
		return err
	}
	if err := login(); err != nil {
		t.Fatalf("the status identity can't log in while on: %v\n%s", err, b.ReadLog())
	}

	// plan shows the removals and writes nothing.
	dry := system.NewDryRun(realSys(root))
	res, err := Converge(ctx, dry, load(false), o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range res.Changes() {
		if c.Changed {
			got[c.Path] = string(c.Action)
		}
	}
	want := map[string]string{status.SecretFile: string(system.Delete), layout.PasswordFile: string(system.Update), layout.ACLFile: string(system.Update)}
	for p, a := range want {
		if got[p] != a {
			t.Errorf("plan: %s %q, want %q (all: %v)", p, got[p], a, got)
		}
	}
	if read(status.SecretFile) == "" {
		t.Fatal("plan removed the secret")
	}

	res, err = Converge(ctx, realSys(root), load(false), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Need != system.NeedReload {
		t.Errorf("need %s, want reload", res.Need)
	}
	if _, err := os.Stat(filepath.Join(root, status.SecretFile)); !os.IsNotExist(err) {
		t.Errorf("the secret is still there: %v", err)
	}
	if strings.Contains(read(layout.PasswordFile), status.User) || strings.Contains(read(layout.ACLFile), status.User) {
		t.Errorf("the identity is left: passwd:\n%s\nacl:\n%s", read(layout.PasswordFile), read(layout.ACLFile))
	}
	if !strings.Contains(read(layout.PasswordFile), "alice:") || !strings.Contains(read(layout.ACLFile), "user alice\n") {
		t.Errorf("alice went too: passwd:\n%s\nacl:\n%s", read(layout.PasswordFile), read(layout.ACLFile))
	}
	if res, err := Converge(ctx, realSys(root), load(false), o); err != nil || res.Changed {
		t.Fatalf("second apply: changed=%v %v\n%+v", res.Changed, err, res.Changes())
	}

	// The broker re-reads the password file on SIGHUP (what apply's reload does).
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	err = login()
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); err = login() {
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Fatalf("the status identity still logs in after status_reader was turned off: %v", err)
	}
	alice := brokertest.Client{Port: port, User: "alice", Password: "alice-secret"}
	if ok, err := brokertest.Roundtrip(alice, alice, "home/x", "1"); !ok {
		t.Fatalf("alice's round trip after the reload: %v\n%s", err, b.ReadLog())
	}
}
