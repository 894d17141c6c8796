package status_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/status"
	"github.com/mosqprov/mosqprov/pkg/system"
)

const alicePass = "alice-test-password" // throwaway test credential

// TestIdentityCanOnlyReadSys runs the real broker with the password file
// and ACL file mosqprov writes for the status identity (next to a user
// with her own rules, and again next to a pattern rule that gives every
// user every topic) and checks from outside that the identity reads $SYS
// and can do nothing else: it can't publish to an ordinary topic, can't
// read one, can't publish into $SYS.
func TestIdentityCanOnlyReadSys(t *testing.T) {
	for _, c := range []struct {
		name  string
		rules []acl.Rule
	}{
		{"user rules", []acl.Rule{{Kind: acl.KindUser, User: "alice", Access: acl.AccessReadWrite, Topic: "#"}}},
		{"pattern for everyone", []acl.Rule{{Kind: acl.KindPattern, Access: acl.AccessReadWrite, Topic: "#"}, {Kind: acl.KindPattern, Access: acl.AccessReadWrite, Topic: "$SYS/#"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			brokertest.Require(t)
			dir := brokertest.Dir(t)
			sys := system.NewReal(dir)
			pw, _, err := status.EnsureSecret(sys, nil)
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(filepath.Join(dir, status.SecretFile)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("secret file: %v %v", fi, err)
			}
			pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
			if _, err := passwd.Converge(system.NewReal("/"), pwFile, []passwd.Desired{{Name: "alice", Password: alicePass}, {Name: status.User, Password: pw}}, passwd.Options{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := acl.Update(system.NewReal("/"), aclFile, func(f *acl.File) error {
				f.Rules = append(append([]acl.Rule(nil), c.rules...), status.Rules()...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// The broker reads both after dropping to its user.
			exec.Command("chown", "mosquitto", pwFile, aclFile).Run()
			port := brokertest.FreePort(t)
			b := brokertest.Start(t, dir, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\nsys_interval 1\n", port, pwFile, aclFile), port)
			alice := brokertest.Client{Port: port, User: "alice", Password: alicePass}
			reader := brokertest.Client{Port: port, User: status.User, Password: pw}

			// It reads $SYS.
			opts := mqtt.NewClientOptions().SetUsername(status.User).SetPassword(pw)
			s, err := status.Read(context.Background(), fmt.Sprintf("tcp://127.0.0.1:%d", port), opts, 1500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			var r status.Report
			r.FromSys(s)
			if !strings.HasPrefix(r.Version, "2.") || s["$SYS/broker/uptime"] == "" || len(s) < 10 {
				t.Fatalf("$SYS as read by the identity: %+v (%d topics)", r, len(s))
			}
			// Alice's own round trip works, so a failure below is the ACL's.
			if ok, err := brokertest.Roundtrip(alice, alice, "home/x", "1"); !ok {
				t.Fatalf("alice's round trip: %v\n%s", err, b.ReadLog())
			}
			// It can't publish to an ordinary topic.
			if ok, _ := brokertest.Roundtrip(alice, reader, "home/x", "from-reader"); ok {
				t.Error("the status identity published to home/x")
			}
			// It can't read one.
			if ok, _ := brokertest.Roundtrip(reader, alice, "home/x", "secret"); ok {
				t.Error("the status identity read home/x")
			}
			if ok, _ := brokertest.Roundtrip(reader, alice, "#", "secret"); ok {
				t.Error("the status identity read # ")
			}
			// It can't publish into $SYS (alice may read it, so she would see it).
			if ok, _ := brokertest.Roundtrip(alice, reader, "$SYS/broker/fake", "x"); ok && c.name == "pattern for everyone" {
				t.Error("the status identity published to $SYS/broker/fake")
			}
		})
	}
}
