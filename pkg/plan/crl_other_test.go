package plan

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// TestRevokeOutsideClientsRealBroker: certificates the CA issued outside
// the clients folder are revoked, one by its serial number in broker.yaml
// (`revoked: [serial:HEX]`, a device whose local copy is lost) and one by
// its certificate file (what `cert revoke --cert FILE` runs, a bridge's
// client certificate written with --out). The real broker (each of
// brokertest.Versions) then refuses both on mqtts and still accepts a
// third device; a rerun of each changes nothing.
func TestRevokeOutsideClientsRealBroker(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, testRevokeOutsideClients)
}

func testRevokeOutsideClients(t *testing.T, m brokertest.Mosquitto) {
	// The target has m's dpkg database: apply finds the version with dpkg.
	root := brokerRoot(t, m)
	ctx := context.Background()
	mqtts := brokertest.FreePort(t)
	specText := func(revoked string) *spec.Spec {
		text := fmt.Sprintf(`hostname: localhost
ips: [127.0.0.1]
tls: {key_type: ecdsa-p256}
listeners:
  - {type: mqtts, port: %d, bind: 127.0.0.1, mutual_tls: true}
package: {install: false}
service: {enable: false}
%s`, mqtts, revoked)
		return parseSpec(t, text)
	}
	if _, err := Converge(ctx, dpkgSys(root), specText(""), Options{}); err != nil {
		t.Fatal(err)
	}
	// kitchen in the clients folder; the bridge's and the lost phone's
	// written elsewhere (cert client --out), as their owners have them.
	devices := brokertest.Dir(t)
	issue := func(name, out string) certs.ClientFiles {
		t.Helper()
		o := certs.ClientOptions{Paths: certs.DefaultPaths(), Name: name, KeyType: pki.ECDSAP256}
		f := certs.ClientFilesIn(filepath.Join(root, layout.ClientDir, name), name)
		if out != "" {
			o.OutDir, o.Out = out, system.NewReal("/")
			f = certs.ClientFilesIn(out, name)
		}
		if _, err := certs.EnsureClient(realSys(root), o); err != nil {
			t.Fatal(err)
		}
		return f
	}
	kitchen := issue("kitchen", "")
	bridge := issue("garage-bridge", filepath.Join(devices, "bridge"))
	phone := issue("phone", filepath.Join(devices, "phone"))
	phoneCert := readCert(t, phone.Cert)
	bridgeCert := readCert(t, bridge.Cert)
	// mosqprov's side of the phone is gone: only its serial is known.
	serial := strings.ToUpper(phoneCert.SerialNumber.Text(16))

	// The bridge's certificate first, as `cert revoke --cert FILE` does;
	// then the phone's serial in broker.yaml, and apply.
	crl, err := certs.EnsureCRL(realSys(root), certs.CRLOptions{Paths: certs.DefaultPaths(), Targets: []certs.Target{{Field: "--cert", Cert: bridgeCert}}})
	if err != nil {
		t.Fatal(err)
	}
	if crl.Need != system.NeedReload || len(crl.Revoked) != 1 || crl.Revoked[0] != "garage-bridge (serial "+bridgeCert.SerialNumber.Text(16)+")" {
		t.Errorf("revoke --cert: need %v, revoked %q", crl.Need, crl.Revoked)
	}
	s := specText("revoked: [\"serial:" + serial + "\"]\n")
	res, err := Converge(ctx, dpkgSys(root), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Need != system.NeedRestart {
		t.Errorf("the first apply with a revocation adds crlfile: want a restart, got %v", res.Need)
	}
	confData, err := os.ReadFile(filepath.Join(root, layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	b := m.Start(t, root, brokertest.Rooted(root, string(confData)), mqtts)
	cafile := filepath.Join(root, layout.BrokerCACert)
	client := func(f certs.ClientFiles) brokertest.Client {
		return brokertest.Client{Host: "localhost", Port: mqtts, Extra: []string{"--cafile", cafile, "--cert", f.Cert, "--key", f.Key}}
	}
	if err := client(kitchen).Publish("t", "1"); err != nil {
		t.Fatalf("mosquitto %s: kitchen (not revoked) refused on mqtts: %v\n%s", m, err, b.ReadLog())
	}
	for what, f := range map[string]certs.ClientFiles{"the phone (revoked by serial)": phone, "the bridge (revoked by its certificate)": bridge} {
		if err := client(f).Publish("t", "1"); err == nil {
			t.Errorf("mosquitto %s: %s accepted on mqtts\n%s", m, what, b.ReadLog())
		}
	}

	// Reruns change nothing.
	before := mtimes(t, root)
	sys := dpkgSys(root)
	res2, err := Converge(ctx, sys, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || len(sys.Changes()) != 0 || res2.Need != system.NeedNothing {
		t.Errorf("second apply: changed=%v files=%v need=%v", res2.Changed, sys.Changes(), res2.Need)
	}
	sys = realSys(root)
	crl2, err := certs.EnsureCRL(sys, certs.CRLOptions{Paths: certs.DefaultPaths(), Targets: []certs.Target{{Field: "--cert", Cert: bridgeCert}}})
	if err != nil || len(sys.Changes()) != 0 || crl2.Need != system.NeedNothing || len(crl2.Revoked) != 0 {
		t.Errorf("second revoke --cert: %v, files %v, need %v, revoked %q", err, sys.Changes(), crl2.Need, crl2.Revoked)
	}
	if after := mtimes(t, root); !maps.Equal(before, after) {
		t.Error("reruns touched files")
	}
	// status names what it can: the phone's and the bridge's serials.
	st, _ := certs.CheckCRL(realSys(root), certs.DefaultPaths(), 30)
	var got []string
	if st.CRL != nil {
		for _, r := range st.CRL.Revoked {
			got = append(got, r.Serial)
		}
	}
	for _, want := range []string{phoneCert.SerialNumber.Text(16), bridgeCert.SerialNumber.Text(16)} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Errorf("the revocation list's status lacks serial %s: %q", want, got)
		}
	}
}

func readCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.ParseCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
