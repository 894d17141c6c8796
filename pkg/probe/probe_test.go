package probe

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// fixture is a real mosquitto with every kind of listener, and the
// certificates it serves, all made here (generated test fixtures).
type fixture struct {
	dir                         string
	caPEM, otherCAPEM           []byte
	plain, mqtts, ws, wss       int
	expired, noSAN, wrongCAPort int
	user, password, deniedUser  string
	deniedPassword              string
	mutual                      int
	client                      tls.Certificate
}

func setup(t *testing.T) *fixture {
	t.Helper()
	brokertest.Require(t)
	f := &fixture{dir: brokertest.Dir(t), user: "alice", password: "s3cret-Alice", deniedUser: "bob", deniedPassword: "s3cret-Bob"}
	now := time.Now()
	ca := newCA(t, now, "probe test CA")
	other := newCA(t, now, "some other CA")
	f.caPEM, f.otherCAPEM = ca.CertPEM, other.CertPEM
	caCert := &pki.CA{Cert: ca.Cert, Key: ca.Key}
	otherCert := &pki.CA{Cert: other.Cert, Key: other.Key}

	write := func(name string, data []byte) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("ca.crt", ca.CertPEM)
	good := issue(t, now, caCert, []string{"localhost"}, []string{"127.0.0.1"}, 30)
	write("good.crt", good.CertPEM)
	write("good.key", good.KeyPEM)
	// Issued 40 days ago for 10 days: expired a month ago.
	old := issue(t, now.AddDate(0, 0, -40), caCert, []string{"localhost"}, []string{"127.0.0.1"}, 10)
	write("old.crt", old.CertPEM)
	write("old.key", old.KeyPEM)
	byOther := issue(t, now, otherCert, []string{"localhost"}, []string{"127.0.0.1"}, 30)
	write("other.crt", byOther.CertPEM)
	write("other.key", byOther.KeyPEM)
	nameOnly := issue(t, now, caCert, []string{"broker.example"}, nil, 30)
	write("name.crt", nameOnly.CertPEM)
	write("name.key", nameOnly.KeyPEM)

	pw := filepath.Join(f.dir, "passwd")
	write("passwd", nil)
	for _, u := range [][2]string{{f.user, f.password}, {f.deniedUser, f.deniedPassword}} {
		// Throwaway test credentials: -b puts them in argv, which mosqprov never does.
		out, err := exec.Command("mosquitto_passwd", "-b", pw, u[0], u[1]).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	os.Chmod(pw, 0o644)
	acl := write("acl", []byte("user alice\ntopic readwrite mosqprov/verify/#\nuser bob\ntopic read nothing/#\n"))

	cl, err := pki.IssueClient(rand.Reader, now, caCert, pki.ClientRequest{Name: "sensor-1", KeyType: pki.ECDSAP256, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	if f.client, err = tls.X509KeyPair(cl.CertPEM, cl.KeyPEM); err != nil {
		t.Fatal(err)
	}

	ports := make([]int, 8)
	for i := range ports {
		ports[i] = brokertest.FreePort(t)
	}
	f.plain, f.mqtts, f.ws, f.wss, f.expired, f.wrongCAPort, f.noSAN = ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	f.mutual = ports[7]
	tlsListener := func(port int, cert, ws string) string {
		return fmt.Sprintf("listener %d 127.0.0.1\n%scertfile %s\nkeyfile %s\n", port, ws,
			filepath.Join(f.dir, cert+".crt"), filepath.Join(f.dir, cert+".key"))
	}
	conf := fmt.Sprintf("per_listener_settings false\nallow_anonymous false\npassword_file %s\nacl_file %s\n", pw, acl) +
		fmt.Sprintf("listener %d 127.0.0.1\n", f.plain) +
		tlsListener(f.mqtts, "good", "") +
		fmt.Sprintf("listener %d 127.0.0.1\nprotocol websockets\n", f.ws) +
		tlsListener(f.wss, "good", "protocol websockets\n") +
		tlsListener(f.expired, "old", "") +
		tlsListener(f.wrongCAPort, "other", "") +
		tlsListener(f.noSAN, "name", "") +
		tlsListener(f.mutual, "good", "require_certificate true\ncafile "+filepath.Join(f.dir, "ca.crt")+"\n")
	brokertest.Start(t, f.dir, conf, ports...)
	return f
}

func newCA(t *testing.T, now time.Time, name string) *pki.Issued {
	t.Helper()
	ca, err := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: name, KeyType: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, now time.Time, ca *pki.CA, names, ips []string, days int) *pki.Issued {
	t.Helper()
	c, err := pki.IssueServer(rand.Reader, now, ca, pki.ServerRequest{Names: names, IPs: ips, KeyType: pki.ECDSAP256, Days: days})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(r Result, name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

func wantCheck(t *testing.T, r Result, name string, want Status, detail string) {
	t.Helper()
	c, ok := status(r, name)
	if !ok {
		t.Fatalf("%s: no %q check in %+v", r.Listener, name, r.Checks)
	}
	if c.Status != want || !strings.Contains(c.Detail, detail) {
		t.Fatalf("%s: check %s = %s %q, want %s containing %q\nall: %+v", r.Listener, name, c.Status, c.Detail, want, detail, r.Checks)
	}
}

// TestProbe runs one fixture (one broker, seven listeners) through every case,
// in subtests so the broker is started once.
func TestProbe(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	good := Options{CA: f.caPEM, Names: []string{"127.0.0.1"}, User: f.user, Password: f.password, Timeout: 3 * time.Second}

	t.Run("every scheme passes with the right CA and password", func(t *testing.T) {
		for _, tc := range []struct {
			scheme Scheme
			port   int
		}{{MQTT, f.plain}, {MQTTS, f.mqtts}, {WS, f.ws}, {WSS, f.wss}} {
			t.Run(string(tc.scheme), func(t *testing.T) {
				r := Probe(ctx, Target{Name: string(tc.scheme), Scheme: tc.scheme, Host: "localhost", Port: tc.port}, good)
				if !r.OK {
					t.Fatalf("failed: %s\n%+v", r.Reason, r.Checks)
				}
				wantCheck(t, r, CheckConnect, OK, "accepts connections")
				wantCheck(t, r, CheckAnonymous, OK, "refused")
				wantCheck(t, r, CheckAuth, OK, `"alice"`)
				wantCheck(t, r, CheckRoundtrip, OK, "received")
				if tc.scheme.TLS() {
					wantCheck(t, r, CheckChain, OK, `"probe test CA"`)
					wantCheck(t, r, "name:localhost", OK, "")
					wantCheck(t, r, "name:127.0.0.1", OK, "")
					wantCheck(t, r, CheckExpiry, Warn, "in 29 days")
					if r.DaysLeft == nil || *r.DaysLeft != 29 {
						t.Fatalf("days left %v, want 29", r.DaysLeft)
					}
				} else if r.DaysLeft != nil {
					t.Fatal("days left reported for a plain listener")
				}
			})
		}
	})

	t.Run("wrong CA", func(t *testing.T) {
		o := good
		o.CA = f.otherCAPEM
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "localhost", Port: f.mqtts}, o)
		if r.OK || !strings.HasPrefix(r.Reason, "chain: not signed by CA \"some other CA\"") {
			t.Fatalf("reason %q", r.Reason)
		}
		// The anonymous check still runs on the pinned certificate, but the
		// password is never sent to a server that did not verify.
		wantCheck(t, r, CheckAnonymous, OK, "refused")
		wantCheck(t, r, CheckAuth, Skip, "credentials not sent")
	})

	t.Run("a private CA not given: the system's roots", func(t *testing.T) {
		o := good
		o.CA = nil
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "localhost", Port: f.mqtts}, o)
		wantCheck(t, r, CheckChain, Fail, `not signed by a CA this machine trusts (issuer is "CN=probe test CA"): for a private CA, give its certificate with --ca`)
		wantCheck(t, r, CheckAuth, Skip, "credentials not sent")
	})

	t.Run("server certificate from another CA", func(t *testing.T) {
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "localhost", Port: f.wrongCAPort}, good)
		wantCheck(t, r, CheckChain, Fail, `issuer is "CN=some other CA"`)
	})

	t.Run("expired certificate", func(t *testing.T) {
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "localhost", Port: f.expired}, good)
		if r.OK || !strings.HasPrefix(r.Reason, "chain: the certificate expired on") {
			t.Fatalf("reason %q", r.Reason)
		}
		wantCheck(t, r, CheckExpiry, Fail, "days ago")
		if r.DaysLeft == nil || *r.DaysLeft >= 0 {
			t.Fatalf("days left %v, want negative", r.DaysLeft)
		}
	})

	t.Run("a name not in the certificate", func(t *testing.T) {
		o := good
		o.Names = []string{"127.0.0.1", "raspberrypi.local", "192.0.2.7"}
		r := Probe(ctx, Target{Name: "wss", Scheme: WSS, Host: "localhost", Port: f.wss}, o)
		wantCheck(t, r, "name:raspberrypi.local", Fail, "raspberrypi.local is not in the certificate (it has localhost, 127.0.0.1)")
		wantCheck(t, r, "name:192.0.2.7", Fail, "not in the certificate")
		wantCheck(t, r, "name:localhost", OK, "")
		// The name dialled verified, so the round trip still ran.
		wantCheck(t, r, CheckRoundtrip, OK, "received")
		if r.OK {
			t.Fatal("result OK with a missing name")
		}
	})

	t.Run("dialling by a name the certificate lacks", func(t *testing.T) {
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "127.0.0.1", Port: f.noSAN}, Options{CA: f.caPEM, User: f.user, Password: f.password})
		wantCheck(t, r, "name:127.0.0.1", Fail, "it has broker.example")
		wantCheck(t, r, CheckAuth, Skip, "credentials not sent")
	})

	t.Run("wrong password", func(t *testing.T) {
		o := good
		o.Password = "not-the-password"
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "localhost", Port: f.mqtts}, o)
		wantCheck(t, r, CheckAuth, Fail, `user "alice" was refused`)
		if _, ran := status(r, CheckRoundtrip); ran {
			t.Fatal("round trip ran after a refused login")
		}
	})

	t.Run("an ACL that denies the test topic", func(t *testing.T) {
		o := good
		o.User, o.Password = f.deniedUser, f.deniedPassword
		o.Timeout = time.Second
		r := Probe(ctx, Target{Name: "ws", Scheme: WS, Host: "127.0.0.1", Port: f.ws}, o)
		wantCheck(t, r, CheckAuth, OK, "")
		// 2.0.11 grants the denied subscription (no 0x80) and drops the message.
		wantCheck(t, r, CheckRoundtrip, Fail, `did not come back within 1s: an ACL may deny user "bob"`)
	})

	t.Run("a listener down", func(t *testing.T) {
		port := brokertest.FreePort(t)
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "127.0.0.1", Port: port}, good)
		if r.OK || !strings.Contains(r.Reason, "connection refused") || len(r.Checks) != 1 {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("TLS spoken to a plain listener", func(t *testing.T) {
		r := Probe(ctx, Target{Name: "mqtts", Scheme: MQTTS, Host: "127.0.0.1", Port: f.plain}, good)
		wantCheck(t, r, CheckTLS, Fail, "TLS handshake failed")
	})

	t.Run("anonymous meant to be on but refused", func(t *testing.T) {
		o := good
		o.AllowAnonymous = true
		o.User = ""
		r := Probe(ctx, Target{Name: "mqtt", Scheme: MQTT, Host: "127.0.0.1", Port: f.plain}, o)
		wantCheck(t, r, CheckAnonymous, Fail, "meant to be on")
	})
}

func TestProbeMutualTLS(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	target := Target{Name: "mqtts", Scheme: MQTTS, Host: "localhost", Port: f.mutual}
	o := Options{CA: f.caPEM, User: f.user, Password: f.password, NeedClientCert: true}

	r := Probe(ctx, target, o)
	wantCheck(t, r, CheckChain, OK, "")
	wantCheck(t, r, CheckAnonymous, Skip, "requires a client certificate")

	o.ClientCert = &f.client
	r = Probe(ctx, target, o)
	if !r.OK {
		t.Fatalf("%s\n%+v", r.Reason, r.Checks)
	}
	wantCheck(t, r, CheckRoundtrip, OK, "received")

	// A broker that wants a certificate and gets none drops the client.
	o.NeedClientCert = false
	o.ClientCert = nil
	r = Probe(ctx, target, o)
	wantCheck(t, r, CheckAnonymous, Fail, "no MQTT answer")
}

func TestProbeAnonymousAccepted(t *testing.T) {
	brokertest.Require(t)
	dir := brokertest.Dir(t)
	port := brokertest.FreePort(t)
	brokertest.Start(t, dir, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port), port)
	r := Probe(context.Background(), Target{Name: "mqtt", Scheme: MQTT, Host: "127.0.0.1", Port: port}, Options{})
	wantCheck(t, r, CheckAnonymous, Fail, "anonymous clients are accepted")
	r = Probe(context.Background(), Target{Name: "mqtt", Scheme: MQTT, Host: "127.0.0.1", Port: port}, Options{AllowAnonymous: true})
	if !r.OK {
		t.Fatalf("%+v", r)
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{Scheme: MQTTS, Host: "pi.local", Port: 8883}, "mqtts://pi.local:8883"},
		{Target{Scheme: WSS, Host: "fd00::1", Port: 9443}, "wss://[fd00::1]:9443/mqtt"},
		{Target{Scheme: WS, Host: "10.0.0.2", Port: 8080, Path: "/"}, "ws://10.0.0.2:8080/"},
	} {
		if got := tc.t.URL(); got != tc.want {
			t.Errorf("URL() = %q, want %q", got, tc.want)
		}
	}
}

// BenchmarkProbe measures one full check of a TLS listener (handshake,
// chain, names, anonymous refusal, login, round trip) against the real
// broker: go test -bench Probe -run '^$' ./pkg/probe
func BenchmarkProbe(b *testing.B) {
	brokertest.Require(b)
	dir := brokertest.Dir(b)
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: "bench CA", KeyType: pki.ECDSAP256})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := pki.IssueServer(rand.Reader, now, &pki.CA{Cert: ca.Cert, Key: ca.Key}, pki.ServerRequest{Names: []string{"localhost"}, KeyType: pki.ECDSAP256, Days: 30})
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "s.crt"), srv.CertPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "s.key"), srv.KeyPEM, 0o644)
	pw := filepath.Join(dir, "passwd")
	os.WriteFile(pw, nil, 0o644)
	if out, err := exec.Command("mosquitto_passwd", "-b", pw, "u", "bench-pw").CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	os.Chmod(pw, 0o644)
	port := brokertest.FreePort(b)
	brokertest.Start(b, dir, fmt.Sprintf("allow_anonymous false\npassword_file %s\nlistener %d 127.0.0.1\ncertfile %s/s.crt\nkeyfile %s/s.key\n", pw, port, dir, dir), port)
	target := Target{Name: "mqtts", Scheme: MQTTS, Host: "localhost", Port: port}
	o := Options{CA: ca.CertPEM, User: "u", Password: "bench-pw"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := Probe(context.Background(), target, o); !r.OK {
			b.Fatal(r.Reason)
		}
	}
}
