package certs

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// startTLS runs the real broker with a TLS listener on the files in sys.
func startTLS(t *testing.T, sys system.System, extra string) (int, *brokertest.Broker) {
	t.Helper()
	return startTLSWith(t, brokertest.Host(t), sys, extra)
}

// startTLSWith is startTLS with the broker m.
func startTLSWith(t *testing.T, m brokertest.Mosquitto, sys system.System, extra string) (int, *brokertest.Broker) {
	t.Helper()
	brokertest.Require(t)
	port := brokertest.FreePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\nallow_anonymous true\n%s",
		port, sys.HostPath("/etc/mosquitto/certs/server.crt"), sys.HostPath("/etc/mosquitto/certs/server.key"), extra)
	return port, m.Start(t, brokertest.Dir(t), conf, port)
}

// handshake is a Go crypto/tls client with hostname verification, as
// Go, Python, Android and iOS clients do it.
func handshake(port int, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func caPool(t *testing.T, pemFiles ...string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, f := range pemFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !p.AppendCertsFromPEM(data) {
			t.Fatalf("no certificate in %s", f)
		}
	}
	return p
}

func TestRealBrokerServesVerifiableCertificate(t *testing.T) {
	requireRoot(t)
	for _, kt := range []pki.KeyType{pki.RSA2048, pki.ECDSAP256} {
		t.Run(string(kt), func(t *testing.T) {
			sys, _ := newSys(t)
			mustCA(t, sys)
			mustServer(t, sys, ServerOptions{Names: []string{"localhost", "raspberrypi.local"}, IPs: []string{"127.0.0.1", "::1"}, KeyType: kt})
			port, b := startTLS(t, sys, "")
			caFile := sys.HostPath("/etc/mosquitto/certs/ca.crt")
			roots := caPool(t, caFile)
			for _, name := range []string{"localhost", "127.0.0.1"} {
				if _, err := handshake(port, name, roots); err != nil {
					t.Errorf("Go TLS handshake as %s: %v\n%s", name, err, b.ReadLog())
				}
			}
			if _, err := handshake(port, "evil.example", roots); err == nil {
				t.Error("Go accepted the certificate for a name it doesn't carry")
			}
			if _, err := handshake(port, "localhost", x509.NewCertPool()); err == nil {
				t.Error("Go accepted the certificate without the CA")
			}
			// mosquitto_pub verifies the hostname against the certificate.
			for _, host := range []string{"localhost", "127.0.0.1"} {
				c := brokertest.Client{Host: host, Port: port, Extra: []string{"--cafile", caFile}}
				if err := c.Publish("t/tls", "hello"); err != nil {
					t.Errorf("mosquitto_pub -h %s: %v\n%s", host, err, b.ReadLog())
				}
			}
			// Negative control for the client: another CA is refused.
			other := filepath.Join(t.TempDir(), "other.crt")
			otherCA, _ := pki.NewCA(rand.Reader, time.Now(), pki.CARequest{CommonName: "other", KeyType: pki.ECDSAP256})
			os.WriteFile(other, otherCA.CertPEM, 0o644)
			if err := (brokertest.Client{Host: "localhost", Port: port, Extra: []string{"--cafile", other}}).Publish("t/tls", "x"); err == nil {
				t.Error("mosquitto_pub trusted a certificate from another CA")
			}
		})
	}
}

// TestArticleCertificateFailsGoCheck is the negative control: the server
// certificate the article makes (openssl, CN only, no subjectAltName) is
// refused by the same Go check that accepts ours.
func TestArticleCertificateFailsGoCheck(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	dir := sys.HostPath("/etc/mosquitto/certs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The article's sequence, with CN=localhost so only the SAN is missing.
	run("req", "-new", "-x509", "-days", "3650", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=MQTT CA")
	run("genrsa", "-out", "server.key", "2048")
	run("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
	run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "365")
	os.Chmod(filepath.Join(dir, "server.key"), 0o644) // the broker drops to mosquitto before reading it
	port, b := startTLS(t, sys, "")
	_, err := handshake(port, "localhost", caPool(t, filepath.Join(dir, "ca.crt")))
	if err == nil {
		t.Fatalf("Go accepted a certificate without subjectAltName\n%s", b.ReadLog())
	}
	if !strings.Contains(err.Error(), "Common Name") && !strings.Contains(err.Error(), "not valid for any names") {
		t.Fatalf("refused for another reason than the missing SAN: %v", err)
	}
	t.Logf("Go refuses the article's certificate: %v", err)
	// For the record: OpenSSL's hostname check (mosquitto_pub) still falls
	// back to the CN, which is why the article's author saw it work.
	if err := (brokertest.Client{Host: "localhost", Port: port, Extra: []string{"--cafile", filepath.Join(dir, "ca.crt")}}).Publish("t", "x"); err != nil {
		t.Logf("mosquitto_pub refuses it too: %v", err)
	} else {
		t.Log("mosquitto_pub accepts it (OpenSSL falls back to the CN)")
	}
}

// TestReloadServesNewCertificate is how we know what a changed certificate
// needs: Mosquitto 2.0.11 re-creates its TLS contexts on SIGHUP, so a reload
// (not a restart) makes it serve the new certificate to the next handshake.
func TestReloadServesNewCertificate(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"localhost"}})
	port, b := startTLS(t, sys, "")
	roots := caPool(t, sys.HostPath("/etc/mosquitto/certs/ca.crt"))
	first, err := handshake(port, "localhost", roots)
	if err != nil {
		t.Fatal(err)
	}
	res := mustServer(t, sys, ServerOptions{Names: []string{"localhost", "mqtt.home.arpa"}})
	if res.Need.String() != "reload" {
		t.Fatalf("need %v", res.Need)
	}
	newPEM, _ := sys.ReadFile("/etc/mosquitto/certs/server.crt")
	want, _ := pki.ParseCertificate(newPEM)
	if got, err := handshake(port, "localhost", roots); err != nil || !got.Equal(first) {
		t.Fatalf("before the reload the broker should still serve the old certificate: %v", err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := handshake(port, "mqtt.home.arpa", roots)
		if err == nil && got.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the broker still serves the old certificate (err %v)\n%s", err, b.ReadLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMutualTLSWithClientCertificate(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"localhost"}})
	if err := runClient(sys, "dev1", true); err != nil {
		t.Fatal(err)
	}
	// The broker reads the client's files only in this test; mosquitto_pub
	// runs as root and reads them from the root-only folder.
	caFile := sys.HostPath("/etc/mosquitto/certs/ca.crt")
	port, b := startTLS(t, sys, fmt.Sprintf("cafile %s\nrequire_certificate true\nuse_identity_as_username true\n", caFile))
	d := sys.HostPath("/etc/mosqprov/clients/dev1")
	ok := brokertest.Client{Host: "localhost", Port: port, Extra: []string{"--cafile", caFile, "--cert", d + "/dev1.crt", "--key", d + "/dev1.key"}}
	if err := ok.Publish("t/mtls", "hi"); err != nil {
		t.Fatalf("client certificate refused: %v\n%s", err, b.ReadLog())
	}
	if !strings.Contains(b.ReadLog(), "u'dev1'") {
		t.Errorf("the broker did not take the CN as user name:\n%s", b.ReadLog())
	}
	if err := (brokertest.Client{Host: "localhost", Port: port, Extra: []string{"--cafile", caFile}}).Publish("t/mtls", "x"); err == nil {
		t.Fatal("a client without certificate was accepted")
	}
	// The PKCS#12 bundle opens in OpenSSL with the password and holds the
	// certificate, its key and the CA.
	cmd := exec.Command("openssl", "pkcs12", "-in", d+"/dev1.p12", "-passin", "env:P12PW", "-nodes")
	cmd.Env = append(os.Environ(), "P12PW=correct horse")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs12: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("subject=CN = dev1")) || !bytes.Contains(out, []byte("subject=CN = test CA")) || !bytes.Contains(out, []byte("PRIVATE KEY")) {
		t.Fatalf("bundle content:\n%s", out)
	}
	cmd = exec.Command("openssl", "pkcs12", "-in", d+"/dev1.p12", "-passin", "pass:wrong", "-nodes")
	if err := cmd.Run(); err == nil {
		t.Fatal("the bundle opened with a wrong password")
	}
}

// TestCAKeyUnreadableByBrokerUser tries to read the files as the mosquitto
// user: the server key must open, the CA key must not, even with its
// folder opened up.
func TestCAKeyUnreadableByBrokerUser(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("runuser"); err != nil {
		t.Fatal("runuser not found (util-linux)")
	}
	sys, _ := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"localhost"}})
	asBroker := func(path string) error {
		out, err := exec.Command("runuser", "-u", "mosquitto", "--", "cat", sys.HostPath(path)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := asBroker("/etc/mosquitto/certs/server.key"); err != nil {
		t.Fatalf("the broker's user can't read its own key: %v", err)
	}
	if err := asBroker("/etc/mosqprov/ca/ca.key"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("reading ca.key as mosquitto: %v", err)
	}
	os.Chmod(sys.HostPath("/etc/mosqprov/ca"), 0o755)
	if err := asBroker("/etc/mosqprov/ca/ca.crt"); err != nil {
		t.Fatalf("control: with the folder open, ca.crt is readable: %v", err)
	}
	if err := asBroker("/etc/mosqprov/ca/ca.key"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("reading ca.key as mosquitto with the folder open: %v", err)
	}
}

// makeExternalChain builds root -> intermediate -> leaf with the openssl
// CLI, the way a public CA's chain looks.
func makeExternalChain(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	os.WriteFile(filepath.Join(dir, "inter.ext"), []byte("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "leaf.ext"), []byte("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"), 0o644)
	run("req", "-new", "-x509", "-days", "30", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "root.key", "-out", "root.crt", "-subj", "/CN=Test Root")
	run("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=Test Intermediate")
	run("x509", "-req", "-in", "inter.csr", "-CA", "root.crt", "-CAkey", "root.key", "-CAcreateserial", "-out", "chain.pem", "-days", "30", "-extfile", "inter.ext")
	run("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "privkey.pem", "-out", "leaf.csr", "-subj", "/CN=localhost")
	run("x509", "-req", "-in", "leaf.csr", "-CA", "chain.pem", "-CAkey", "inter.key", "-CAcreateserial", "-out", "cert.pem", "-days", "20", "-extfile", "leaf.ext")
	cert, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	chain, _ := os.ReadFile(filepath.Join(dir, "chain.pem"))
	os.WriteFile(filepath.Join(dir, "fullchain.pem"), append(cert, chain...), 0o644)
	return dir
}

func TestImportExternalChain(t *testing.T) {
	requireRoot(t)
	// The chain first: openssl's NotBefore is the current second, and the
	// System's clock (truncated to the second) must not be older than that.
	ext := makeExternalChain(t)
	sys, _ := newSys(t)
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(ext, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	roots := caPool(t, filepath.Join(ext, "root.crt"))
	o := ImportOptions{Paths: DefaultPaths(), CertPEM: read("cert.pem"), KeyPEM: read("privkey.pem"), Roots: roots}

	before := snapshot(t, sys.Root())
	if _, err := Import(sys, o); !errs.IsInput(err) || !strings.Contains(err.Error(), "chain") {
		t.Fatalf("leaf without intermediates: %v", err)
	}
	wrongKey := o
	wrongKey.KeyPEM = read("inter.key")
	wrongKey.ChainPEM = read("chain.pem")
	if _, err := Import(sys, wrongKey); !errs.IsInput(err) || !strings.Contains(err.Error(), "--key") {
		t.Fatalf("wrong key: %v", err)
	}
	sameAfter(t, sys.Root(), before)

	o.ChainPEM = read("chain.pem")
	res, err := Import(sys, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Need.String() != "reload" {
		t.Fatalf("need %v", res.Need)
	}
	checkOwners(t, sys, []wantFile{
		{"/etc/mosquitto/certs/server.crt", 0o644, "root"},
		{"/etc/mosquitto/certs/server.key", 0o600, "mosquitto"},
	})
	installed, _ := sys.ReadFile("/etc/mosquitto/certs/server.crt")
	if certs, _ := pki.ParseCertificates(installed); len(certs) != 2 {
		t.Fatalf("server.crt holds %d certificates, want leaf + intermediate", len(certs))
	}
	// fullchain.pem alone is the same thing: nothing changes.
	before = snapshot(t, sys.Root())
	res, err = Import(sys, ImportOptions{Paths: DefaultPaths(), CertPEM: read("fullchain.pem"), KeyPEM: read("privkey.pem"), Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	noChanges(t, res)
	sameAfter(t, sys.Root(), before)

	// The broker sends the intermediate: a client trusting only the root
	// verifies the chain.
	port, b := startTLS(t, sys, "")
	if _, err := handshake(port, "localhost", roots); err != nil {
		t.Fatalf("handshake with the imported chain: %v\n%s", err, b.ReadLog())
	}
	if err := (brokertest.Client{Host: "localhost", Port: port, Extra: []string{"--cafile", filepath.Join(ext, "root.crt")}}).Publish("t", "x"); err != nil {
		t.Fatalf("mosquitto_pub with the root only: %v", err)
	}
	// renew leaves an imported certificate alone.
	mustCA(t, sys)
	before = snapshot(t, sys.Root())
	rr, err := Renew(sys, RenewOptions{Paths: DefaultPaths(), RenewBefore: 30})
	if err != nil {
		t.Fatal(err)
	}
	noChanges(t, rr)
	sameAfter(t, sys.Root(), before)
}
