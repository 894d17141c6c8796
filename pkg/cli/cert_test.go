package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

type certTestHost struct{}

func (certTestHost) Hostname() (string, error) { return "Blinds-Pi", nil }
func (certTestHost) Addrs() ([]net.IP, error) {
	return []net.IP{net.ParseIP("192.168.1.23"), net.ParseIP("fd00::23")}, nil
}

func certApp(t *testing.T, stdin string) (*App, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := NewApp(&IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	a.Sys = system.NewReal(t.TempDir(), system.WithRunner(&system.Recorder{}))
	if err := a.init("cert"); err != nil {
		t.Fatal(err)
	}
	return a, &out, &errOut
}

func TestRunCertServerDefaultNames(t *testing.T) {
	a, out, _ := certApp(t, "")
	ctx := context.Background()
	if err := runCertCA(ctx, &certCAOptions{App: a, CAName: "t", KeyType: "ecdsa-p256"}); err != nil {
		t.Fatal(err)
	}
	o := &certServerOptions{App: a, Days: pki.ServerDays, RenewBefore: 30, Host: certTestHost{}, KeyType: "ecdsa-p256"}
	if err := runCertServer(ctx, o); err != nil {
		t.Fatal(err)
	}
	data, _ := a.Sys.ReadFile("/etc/mosquitto/certs/server.crt")
	c, err := pki.ParseCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	want := "blinds-pi blinds-pi.local localhost 127.0.0.1 ::1 192.168.1.23 fd00::23"
	if got := strings.Join(pki.SANs(c), " "); got != want {
		t.Fatalf("SANs %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "+ server certificate: created") {
		t.Fatalf("output:\n%s", out)
	}
	out.Reset()
	if err := runCertServer(ctx, o); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "+") || strings.HasPrefix(line, "~") || strings.HasPrefix(line, "-") {
			t.Fatalf("second run changed something:\n%s", out)
		}
	}
}

func TestRunCertClientP12PasswordNeverPrinted(t *testing.T) {
	a, out, errOut := certApp(t, "hunter2-but-longer\n")
	a.Globals.Output = "json"
	ctx := context.Background()
	if err := runCertCA(ctx, &certCAOptions{App: a, CAName: "t", KeyType: "ecdsa-p256"}); err != nil {
		t.Fatal(err)
	}
	o := &certClientOptions{App: a, Name: "phone", Days: 100, RenewBefore: 30, P12: true, PasswordStdin: true}
	if err := runCertClient(ctx, o); err != nil {
		t.Fatal(err)
	}
	a.finish(nil)
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !rep.Changed || len(rep.Changes) == 0 {
		t.Fatalf("report %+v", rep)
	}
	if strings.Contains(out.String()+errOut.String(), "hunter2") {
		t.Fatal("the password was printed")
	}
}

func TestCertFlags(t *testing.T) {
	a, _, _ := certApp(t, "")
	cmd := newCertServerCmd(a, &certPathFlags{})
	if err := cmd.ParseFlags([]string{"--name", "a.local", "--name", "b.local", "--ip", "10.0.0.1", "--key-type", "ecdsa-p384", "--days", "90", "--renew-before", "10"}); err != nil {
		t.Fatal(err)
	}
	// The options live in the RunE closure; read them back through the flags.
	f := cmd.Flags()
	names, _ := f.GetStringArray("name")
	ips, _ := f.GetStringArray("ip")
	kt, _ := f.GetString("key-type")
	days, _ := f.GetInt("days")
	rb, _ := f.GetInt("renew-before")
	if strings.Join(names, ",") != "a.local,b.local" || strings.Join(ips, ",") != "10.0.0.1" || kt != "ecdsa-p384" || days != 90 || rb != 10 {
		t.Fatalf("flags: %v %v %s %d %d", names, ips, kt, days, rb)
	}
	for _, args := range [][]string{{"client"}, {"client", "a", "b"}, {"status", "x"}, {"import", "--cert", "x"}, {"server", "--days", "x"}} {
		a2, _, _ := certApp(t, "")
		code := Run(context.Background(), a2, append([]string{"cert"}, args...))
		if code != ExitUsage {
			t.Errorf("cert %v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

// hupRunner answers systemctl for a booted host whose mosquitto unit is the
// test's real broker: `systemctl reload mosquitto` sends it SIGHUP, as
// Debian's unit (ExecReload=/bin/kill -HUP $MAINPID) does. With drop set,
// the reload reaches no broker: the control that shows the SIGHUP is what
// makes the difference.
type hupRunner struct {
	mu     sync.Mutex
	broker *brokertest.Broker
	drop   bool
	calls  []string
}

func (r *hupRunner) Run(_ context.Context, cmd system.Cmd) (system.Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := cmd.String()
	switch {
	case strings.HasPrefix(line, "systemctl is-active"):
		if r.broker == nil {
			return system.Output{Stdout: []byte("inactive\n"), ExitCode: 3}, nil
		}
		return system.Output{Stdout: []byte("active\n")}, nil
	case line == "systemctl reload mosquitto" && !r.drop:
		r.calls = append(r.calls, line)
		return system.Output{}, r.broker.Reload()
	}
	r.calls = append(r.calls, line)
	return system.Output{}, nil
}

// servedCert is the certificate the broker presents to a client that
// verifies it against roots for localhost.
func servedCert(port int, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestCertRenewMakesBrokerServeNewCertificate runs `cert renew` against a
// real broker serving a certificate that is due: the renewed certificate
// must be what the next TLS client gets, through the reload the command
// asks systemd for. The control drops that reload, and the broker keeps
// serving the old certificate.
func TestCertRenewMakesBrokerServeNewCertificate(t *testing.T) {
	brokertest.Require(t)
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("reload dropped=%v", drop), func(t *testing.T) {
			root := brokertest.Dir(t)
			port := brokertest.FreePort(t)
			hup := &hupRunner{drop: drop}
			run := func(args ...string) {
				t.Helper()
				var out bytes.Buffer
				a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
				a.Sys = system.NewReal(root, system.WithRunner(hup))
				a.Service = systemd.New(system.NewReal("/", system.WithRunner(hup)))
				a.Service.Booted = func() bool { return true }
				a.Service.Listeners = func(context.Context) ([]systemd.Listener, error) {
					return []systemd.Listener{{Port: port, Bind: "127.0.0.1"}}, nil
				}
				if code := Run(context.Background(), a, args); code != 0 {
					t.Fatalf("mosqprov %s: exit %d\n%s", strings.Join(args, " "), code, &out)
				}
			}
			run("cert", "ca", "--key-type", "ecdsa-p256")
			// 20 days: due for the default --renew-before of 30.
			run("cert", "server", "--name", "localhost", "--key-type", "ecdsa-p256", "--days", "20", "--renew-before", "5")
			sys := system.NewReal(root)
			conf := fmt.Sprintf("listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\nallow_anonymous true\n",
				port, sys.HostPath("/etc/mosquitto/certs/server.crt"), sys.HostPath("/etc/mosquitto/certs/server.key"))
			b := brokertest.Start(t, brokertest.Dir(t), conf, port)
			hup.mu.Lock()
			hup.broker, hup.calls = b, nil
			hup.mu.Unlock()
			caPEM, _ := sys.ReadFile("/etc/mosquitto/certs/ca.crt")
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(caPEM)
			old, err := servedCert(port, roots)
			if err != nil {
				t.Fatalf("handshake before renew: %v\n%s", err, b.ReadLog())
			}

			run("cert", "renew")
			if diff := cmp.Diff([]string{"systemctl reload mosquitto"}, hup.calls); diff != "" {
				t.Fatalf("cert renew must reload (not restart) once (-want +got):\n%s", diff)
			}
			newPEM, _ := sys.ReadFile("/etc/mosquitto/certs/server.crt")
			renewed, err := pki.ParseCertificate(newPEM)
			if err != nil || renewed.Equal(old) || pki.DaysLeft(renewed, time.Now()) < 800 {
				t.Fatalf("server.crt was not renewed: %v", err)
			}
			got, err := servedCert(port, roots)
			if err != nil {
				t.Fatalf("handshake after renew: %v\n%s", err, b.ReadLog())
			}
			if drop {
				if !got.Equal(old) {
					t.Fatal("control: without the SIGHUP the broker already serves the new certificate, so this test proves nothing")
				}
				return
			}
			// The broker handles SIGHUP in its main loop: poll briefly.
			for deadline := time.Now().Add(5 * time.Second); !got.Equal(renewed); {
				if time.Now().After(deadline) {
					t.Fatalf("after cert renew the broker still serves the old certificate (until %s)\n%s", got.NotAfter, b.ReadLog())
				}
				time.Sleep(50 * time.Millisecond)
				if got, err = servedCert(port, roots); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
