package certs

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// mtlsClient is mosquitto_pub with client's certificate from the clients folder.
func mtlsClient(sys system.System, port int, name string) brokertest.Client {
	d := sys.HostPath("/etc/mosqprov/clients/" + name)
	return brokertest.Client{Host: "localhost", Port: port, Extra: []string{
		"--cafile", sys.HostPath("/etc/mosquitto/certs/ca.crt"),
		"--cert", d + "/" + name + ".crt", "--key", d + "/" + name + ".key",
	}}
}

func mustRevoke(t *testing.T, sys system.System, names ...string) CRLResult {
	t.Helper()
	res, err := EnsureCRL(sys, CRLOptions{Paths: DefaultPaths(), Revoke: names})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitRefused polls until c is refused (a reload is asynchronous).
func waitRefused(c brokertest.Client) error {
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = c.Publish("t/crl", "x"); err != nil {
			return nil
		}
	}
	return fmt.Errorf("still accepted")
}

// TestReloadReadsNewCRL is how we know what a changed CRL needs, and that a
// revoked client is refused while the others still connect: the real
// broker, mutual TLS with crlfile, real mosquitto_pub with each client's
// certificate. Against each broker of brokertest.Versions (2.0.11, 2.0.21,
// 2.1): on every one a reload is enough.
func TestReloadReadsNewCRL(t *testing.T) {
	requireRoot(t)
	brokertest.Each(t, testReloadReadsNewCRL)
}

func testReloadReadsNewCRL(t *testing.T, m brokertest.Mosquitto) {
	sys, _ := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"localhost"}})
	for _, n := range []string{"lost-phone", "sold-esp32", "kitchen"} {
		if err := runClient(sys, n, false); err != nil {
			t.Fatal(err)
		}
	}
	res := mustRevoke(t, sys, "lost-phone")
	if !res.Exists || len(res.Revoked) != 1 || res.Need.String() != "reload" {
		t.Fatalf("first revoke: %+v", res)
	}
	caFile := sys.HostPath("/etc/mosquitto/certs/ca.crt")
	port, b := startTLSWith(t, m, sys, fmt.Sprintf("cafile %s\nrequire_certificate true\nuse_identity_as_username true\ncrlfile %s\n",
		caFile, sys.HostPath("/etc/mosquitto/certs/crl.pem")))

	if err := mtlsClient(sys, port, "kitchen").Publish("t/crl", "hi"); err != nil {
		t.Fatalf("a client that is not revoked was refused: %v\n%s", err, b.ReadLog())
	}
	if err := mtlsClient(sys, port, "lost-phone").Publish("t/crl", "hi"); err == nil {
		t.Fatalf("the revoked client was accepted\n%s", b.ReadLog())
	}

	// Revoke a second one while the broker runs.
	res = mustRevoke(t, sys, "lost-phone", "sold-esp32")
	if len(res.Revoked) != 1 || res.Revoked[0] != "sold-esp32" || res.Need.String() != "reload" {
		t.Fatalf("second revoke: %+v", res)
	}
	if err := mtlsClient(sys, port, "sold-esp32").Publish("t/crl", "hi"); err != nil {
		t.Logf("%s: before the reload the broker already refuses the newly revoked client: %v", m, err)
	} else {
		t.Logf("%s: before the reload the broker still accepts the newly revoked client: it read the CRL at start", m)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := waitRefused(mtlsClient(sys, port, "sold-esp32")); err != nil {
		t.Fatalf("after SIGHUP the newly revoked client is %v\n%s", err, b.ReadLog())
	}
	if err := mtlsClient(sys, port, "kitchen").Publish("t/crl", "hi"); err != nil {
		t.Fatalf("after the reload a client that is not revoked was refused: %v\n%s", err, b.ReadLog())
	}

	// A rerun changes nothing.
	before, _ := os.ReadFile(sys.HostPath("/etc/mosquitto/certs/crl.pem"))
	res = mustRevoke(t, sys, "lost-phone", "sold-esp32")
	for _, c := range res.Changes {
		if c.Changed {
			t.Errorf("rerun changed %s", c.Path)
		}
	}
	if res.Need.String() != "none" || len(res.Revoked) != 0 {
		t.Errorf("rerun: %+v", res)
	}
	after, _ := os.ReadFile(sys.HostPath("/etc/mosquitto/certs/crl.pem"))
	if string(before) != string(after) {
		t.Error("rerun rewrote the CRL")
	}
}
