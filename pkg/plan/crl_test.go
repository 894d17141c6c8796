package plan

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// revokeSpec is a broker whose devices log in with client certificates on
// mqtts and wss.
func revokeSpec(t *testing.T, mqtts, wss int, revoked ...string) *spec.Spec {
	t.Helper()
	text := fmt.Sprintf(`hostname: localhost
ips: [127.0.0.1]
tls: {key_type: ecdsa-p256}
listeners:
  - {type: mqtts, port: %d, bind: 127.0.0.1, mutual_tls: true}
  - {type: wss, port: %d, bind: 127.0.0.1, mutual_tls: true}
package: {install: false}
service: {enable: false}
`, mqtts, wss)
	if len(revoked) > 0 {
		text += "revoked: [" + strings.Join(revoked, ", ") + "]\n"
	}
	return parseSpec(t, text)
}

// wssWithCert connects over wss with a client certificate; nil when the
// broker accepted it.
func wssWithCert(root string, port int, name string) error {
	dir := filepath.Join(root, layout.ClientDir, name)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(filepath.Join(root, layout.BrokerCACert))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	opts := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("wss://localhost:%d/mqtt", port)).
		SetClientID("wss-" + name).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).
		SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("timeout")
	}
	if tok.Error() != nil {
		return tok.Error()
	}
	c.Disconnect(100)
	return nil
}

// TestApplyRevokedRealBroker: `revoked:` in broker.yaml puts the device's
// certificate on the CRL and crlfile on the mutual-TLS listeners; the real
// broker then refuses that device on mqtts and still accepts the others,
// plan warns about the wss listener (which doesn't check the CRL), and a
// second apply changes nothing. Against each broker of
// brokertest.Versions: 2.0.11 and 2.0.21 let the revoked device in over wss
// (mosquitto issue 3042), so plan warns there; 2.1.2 refuses it there too,
// and plan says nothing.
func TestApplyRevokedRealBroker(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, testApplyRevoked)
}

func testApplyRevoked(t *testing.T, m brokertest.Mosquitto) {
	// The target has m's dpkg database: plan finds the version with dpkg.
	root := brokerRoot(t, m)
	ctx := context.Background()
	mqtts, wss := brokertest.FreePort(t), brokertest.FreePort(t)

	if _, err := Converge(ctx, dpkgSys(root), revokeSpec(t, mqtts, wss), Options{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"kitchen", "lost-phone"} {
		if _, err := certs.EnsureClient(dpkgSys(root), certs.ClientOptions{Paths: certs.DefaultPaths(), Name: n, KeyType: pki.ECDSAP256}); err != nil {
			t.Fatal(err)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(root, layout.DropIn)); strings.Contains(string(data), "crlfile") {
		t.Fatalf("crlfile before anything was revoked:\n%s", data)
	}

	s := revokeSpec(t, mqtts, wss, "lost-phone")
	plan, err := Converge(ctx, system.NewDryRun(dpkgSys(root)), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wssChecksCRL := m.AtLeast(2, 1)
	if warned := strings.Contains(strings.Join(plan.Warnings, "\n"), fmt.Sprintf("wss listener on port %d does not check the revocation list", wss)); warned == wssChecksCRL {
		t.Errorf("mosquitto %s: plan warns about the wss listener: %v (warnings %q)", m, warned, plan.Warnings)
	}
	res, err := Converge(ctx, dpkgSys(root), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Need != system.NeedRestart {
		t.Errorf("adding crlfile needs a restart, got %v", res.Need)
	}
	confData, err := os.ReadFile(filepath.Join(root, layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(confData), "crlfile "+layout.BrokerCRL); n != 2 {
		t.Fatalf("want crlfile on both mutual-TLS listeners, got %d:\n%s", n, confData)
	}
	conf := brokertest.Rooted(root, string(confData))
	b := m.Start(t, root, conf, mqtts, wss)

	cafile := filepath.Join(root, layout.BrokerCACert)
	client := func(name string) brokertest.Client {
		d := filepath.Join(root, layout.ClientDir, name)
		return brokertest.Client{Host: "localhost", Port: mqtts, Extra: []string{"--cafile", cafile, "--cert", d + "/" + name + ".crt", "--key", d + "/" + name + ".key"}}
	}
	if err := client("kitchen").Publish("t", "1"); err != nil {
		t.Fatalf("kitchen (not revoked) refused on mqtts: %v\n%s", err, b.ReadLog())
	}
	if err := client("lost-phone").Publish("t", "1"); err == nil {
		t.Fatalf("lost-phone (revoked) accepted on mqtts\n%s", b.ReadLog())
	}
	if err := wssWithCert(root, wss, "kitchen"); err != nil {
		t.Fatalf("kitchen refused on wss: %v\n%s", err, b.ReadLog())
	}
	if err := wssWithCert(root, wss, "lost-phone"); (err != nil) != wssChecksCRL {
		t.Errorf("mosquitto %s: the revoked lost-phone over wss: %v; want refused=%v (plan's warning relies on this)", m, err, wssChecksCRL)
	}

	// A second apply changes nothing and writes nothing.
	before := mtimes(t, root)
	sys2 := dpkgSys(root)
	res2, err := Converge(ctx, sys2, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || len(sys2.Changes()) != 0 || res2.Need != system.NeedNothing {
		t.Fatalf("second apply: changed=%v files=%v need=%v", res2.Changed, sys2.Changes(), res2.Need)
	}
	if after := mtimes(t, root); !maps.Equal(before, after) {
		t.Fatalf("second apply touched files")
	}
}
