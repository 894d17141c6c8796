package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
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
