package systemd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
)

// TestReloadPicksUp checks, with the real broker and SIGHUP (what the unit's
// ExecReload sends), which changed files the running broker picks up. It is
// the evidence behind Need: password file, ACL file and certificates ->
// Reload; listeners -> Restart.
func TestReloadPicksUp(t *testing.T) {
	brokertest.Require(t)
	t.Run("password file", func(t *testing.T) {
		b, env := startReloadBroker(t)
		newUser := brokertest.Client{Port: env.plain, User: "u2", Password: "pw-two"}
		if err := newUser.Publish("b/x", "hi"); err == nil {
			t.Fatal("u2 could log in before it was in the password file")
		}
		env.passwd(t, "u2", "pw-two")
		reload(t, b)
		eventually(t, "u2 logs in after SIGHUP", func() error { return newUser.Publish("b/x", "hi") })
	})
	t.Run("ACL file", func(t *testing.T) {
		b, env := startReloadBroker(t)
		u1 := brokertest.Client{Port: env.plain, User: "u1", Password: "pw-one"}
		if ok, err := brokertest.Roundtrip(u1, u1, "b/x", "before"); err != nil || ok {
			t.Fatalf("u1 got b/x before the ACL granted it (delivered=%v, %v)", ok, err)
		}
		writeFile(t, env.acl, "user u1\ntopic readwrite a/#\ntopic readwrite b/#\n")
		reload(t, b)
		eventually(t, "u1 gets b/x after SIGHUP", func() error {
			ok, err := brokertest.Roundtrip(u1, u1, "b/x", "after")
			if err == nil && !ok {
				err = fmt.Errorf("not delivered")
			}
			return err
		})
	})
	t.Run("certificate and key", func(t *testing.T) {
		b, env := startReloadBroker(t)
		if cn := serverCN(env.tls); cn != "cert-a" {
			t.Fatalf("TLS listener serves %q, want cert-a", cn)
		}
		writeCert(t, env.dir, "cert-b")
		reload(t, b)
		eventually(t, "TLS listener serves cert-b after SIGHUP", func() error {
			if cn := serverCN(env.tls); cn != "cert-b" {
				return fmt.Errorf("serves %q", cn)
			}
			return nil
		})
	})
	t.Run("listener needs a restart", func(t *testing.T) {
		b, env := startReloadBroker(t)
		moved := brokertest.FreePort(t)
		conf, _ := os.ReadFile(b.Conf)
		writeFile(t, b.Conf, strings.Replace(string(conf), fmt.Sprintf("listener %d ", env.plain), fmt.Sprintf("listener %d ", moved), 1))
		reload(t, b)
		eventually(t, "broker logs that it can't change listeners", func() error {
			if !strings.Contains(b.ReadLog(), "not currently possible to add/remove listeners") {
				return fmt.Errorf("log:\n%s", b.ReadLog())
			}
			return nil
		})
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", moved), time.Second); err == nil {
			c.Close()
			t.Fatalf("a reload opened the new listener %d: Need could use Reload for listeners", moved)
		}
		if err := (brokertest.Client{Port: env.plain, User: "u1", Password: "pw-one"}).Publish("a/x", "hi"); err != nil {
			t.Fatalf("the old listener stopped after the reload: %v", err)
		}
	})
}

type reloadEnv struct {
	dir, pw, acl string
	plain, tls   int
}

func (e reloadEnv) passwd(t *testing.T, user, password string) {
	t.Helper()
	// Throwaway test credentials: mosqprov itself never puts a password in argv.
	args := []string{"-b", e.pw, user, password}
	if _, err := os.Stat(e.pw); os.IsNotExist(err) {
		args = append([]string{"-c"}, args...)
	}
	if out, err := exec.Command(mosquittoPasswd(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	os.Chmod(e.pw, 0o644) // the broker reads it after dropping to its user
}

func mosquittoPasswd(t *testing.T) string {
	for _, p := range []string{"mosquitto_passwd", "/usr/bin/mosquitto_passwd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("mosquitto_passwd not found: apt-get install -y mosquitto")
	return ""
}

func startReloadBroker(t *testing.T) (*brokertest.Broker, reloadEnv) {
	t.Helper()
	dir := brokertest.Dir(t)
	env := reloadEnv{dir: dir, pw: filepath.Join(dir, "passwd"), acl: filepath.Join(dir, "acl"), plain: brokertest.FreePort(t), tls: brokertest.FreePort(t)}
	env.passwd(t, "u1", "pw-one")
	writeFile(t, env.acl, "user u1\ntopic readwrite a/#\n")
	writeCert(t, dir, "cert-a")
	conf := fmt.Sprintf(`per_listener_settings false
allow_anonymous false
password_file %s
acl_file %s
listener %d 127.0.0.1
listener %d 127.0.0.1
certfile %s/server.crt
keyfile %s/server.key
`, env.pw, env.acl, env.plain, env.tls, dir, dir)
	return brokertest.Start(t, dir, conf, env.plain, env.tls), env
}

func reload(t *testing.T, b *brokertest.Broker) {
	t.Helper()
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
}

// eventually retries check until it passes: SIGHUP is handled
// asynchronously by the broker's main loop.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = check(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCert writes a self-signed server certificate for 127.0.0.1 named cn
// (a generated test fixture, never committed).
func writeCert(t *testing.T, dir, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "server.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(dir, "server.key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})))
}

// serverCN is the CN of the certificate a TLS listener presents.
func serverCN(port int) string {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&tls.Config{InsecureSkipVerify: true}) // only reading which certificate is served
	if err != nil {
		return "error: " + err.Error()
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}
