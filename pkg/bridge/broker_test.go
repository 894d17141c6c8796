package bridge

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// The rendered addresses are what the real broker takes: an IPv6 address
// written as [::1]:port in broker.yaml, and failover to the second address
// when the first refuses.
func TestAddressesRealBroker(t *testing.T) {
	brokertest.Require(t)
	remote, local, dead := brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)
	dir := brokertest.Dir(t)
	brokertest.Start(t, brokertest.Dir(t), fmt.Sprintf("listener %d\nallow_anonymous true\n", remote), remote)

	b := Bridge{
		Name:      "v6",
		Addresses: []string{fmt.Sprintf("localhost:%d", dead), fmt.Sprintf("[::1]:%d", remote)},
		Topics:    []Topic{{Pattern: "x/#", Direction: Out, QoS: 1}},
		ClientID:  "v6.test",
		Source:    SourceSpec,
	}
	data, err := Render([]Bridge{b})
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, dir, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n%s", local, data), local)

	// Each try of the dead address waits for the restart timeout (5 s at
	// first), so give the failover time.
	topic := b.StateTopic()
	var got []string
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); {
		s, err := brokertest.Client{Port: local}.Subscribe(topic, 1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ = s.Wait(); len(got) == 1 && got[0] == topic+" 1" {
			break
		}
	}
	if len(got) != 1 || !strings.HasSuffix(got[0], " 1") {
		t.Fatalf("the bridge never connected through its second address: %q", got)
	}
	ok, err := brokertest.Roundtrip(brokertest.Client{Host: "::1", Port: remote}, brokertest.Client{Port: local}, "x/1", "hello")
	if err != nil || !ok {
		t.Fatalf("no message through the bridge: %v %v", ok, err)
	}
}

// Diagnose reads the causes from the real broker's log: bridges that fail
// in each way the broker tells apart, and one that connects. Against each
// broker of brokertest.Versions (2.0.11, 2.0.21, 2.1): doctor's bridge-down
// reads the log of whichever is installed.
func TestDiagnoseRealBroker(t *testing.T) {
	brokertest.Require(t)
	brokertest.Each(t, testDiagnose)
}

func testDiagnose(t *testing.T, m brokertest.Mosquitto) {
	dir := brokertest.Dir(t)
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: "hub CA", KeyType: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	loaded, _ := pki.LoadCA(ca.CertPEM, ca.KeyPEM)
	srv, err := pki.IssueServer(rand.Reader, now, loaded, pki.ServerRequest{Names: []string{"localhost"}, KeyType: pki.ECDSAP256, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: "other CA", KeyType: pki.ECDSAP256})
	h, err := passwd.New("good-password", passwd.PBKDF2, 101)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ca.crt": ca.CertPEM, "srv.crt": srv.CertPEM, "srv.key": srv.KeyPEM, "passwd": []byte("pi1:" + h.String() + "\n")}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hub, dead, local := brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)
	m.Start(t, dir, fmt.Sprintf("listener %d\ncertfile %s/srv.crt\nkeyfile %s/srv.key\npassword_file %s/passwd\nallow_anonymous false\n", hub, dir, dir, dir), hub)

	mk := func(name, addr string, caPEM []byte, pw string) Bridge {
		return Bridge{Name: name, Addresses: []string{addr}, Topics: []Topic{{Pattern: "x/#", Direction: Out}}, CA: caPEM,
			Username: "pi1", Password: pw, ClientID: name + ".pi", Source: SourceSpec, InsecurePlainTCP: caPEM == nil}
	}
	bridges := []Bridge{
		mk("dns", fmt.Sprintf("no-such-host.invalid:%d", hub), ca.CertPEM, "good-password"),
		mk("refused", fmt.Sprintf("localhost:%d", dead), nil, "good-password"),
		mk("chain", fmt.Sprintf("localhost:%d", hub), other.CertPEM, "good-password"),
		mk("name", fmt.Sprintf("127.0.0.1:%d", hub), ca.CertPEM, "good-password"),
		mk("password", fmt.Sprintf("localhost:%d", hub), ca.CertPEM, "wrong-password"),
		mk("good", fmt.Sprintf("localhost:%d", hub), ca.CertPEM, "good-password"),
		mk("store", fmt.Sprintf("localhost:%d", hub), nil, "good-password"),
	}
	// "store" trusts the system's CA store (bridge_capath): here a folder
	// holding the hub's CA, hashed as ca-certificates keeps /etc/ssl/certs.
	bridges[6].SystemCA, bridges[6].InsecurePlainTCP = true, false
	capath := filepath.Join(dir, "capath")
	os.Mkdir(capath, 0o755)
	os.WriteFile(filepath.Join(capath, "hub-ca.pem"), ca.CertPEM, 0o644)
	if out, err := exec.Command("openssl", "rehash", capath).CombinedOutput(); err != nil {
		t.Fatalf("openssl rehash: %v: %s", err, out)
	}
	data, err := Render(bridges)
	if err != nil {
		t.Fatal(err)
	}
	// The TLS files where the rendered file names them are this test's.
	conf := string(data)
	for _, b := range bridges {
		if len(b.CA) > 0 {
			p := filepath.Join(dir, b.Name+"-ca.crt")
			os.WriteFile(p, b.CA, 0o644)
			conf = strings.ReplaceAll(conf, Dir+"/"+b.Name+"-ca.crt", p)
		}
	}
	conf = strings.ReplaceAll(conf, "bridge_capath "+SystemCAPath, "bridge_capath "+capath)
	// The broker's default log levels, as Debian's mosquitto.conf leaves them.
	b := startDefaultLog(t, m, fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n%s", local, conf), local)
	want := map[string]Cause{"dns": CauseDNS, "refused": CauseRefused, "chain": CauseTLSChain, "name": CauseTLSName, "password": CauseCredentials}
	if m.AtLeast(2, 1) {
		// 2.1.2 logs "certificate verify failed" for both, without 2.0's
		// "host name verification failed".
		want["chain"], want["name"] = CauseTLSVerify, CauseTLSVerify
	}
	var got map[string]Cause
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got = map[string]Cause{}
		for _, d := range Diagnose(bridges, strings.Split(b.ReadLog(), "\n"), "") {
			got[d.Bridge] = d.Cause
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mosquitto %s: diagnosed %v, want %v; log:\n%s", m, got, want, b.ReadLog())
	}
	// The two that connect say so on $SYS.
	for _, name := range []string{"good", "store"} {
		topic := "$SYS/broker/connection/" + name + ".pi/state"
		sub, err := brokertest.Client{Port: local}.Subscribe(topic, 1, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if lines, _ := sub.Wait(); len(lines) != 1 || lines[0] != topic+" 1" {
			t.Errorf("bridge %s: %q, want connected", name, lines)
		}
	}
}

// startDefaultLog runs the broker with a log file and no log_type line.
func startDefaultLog(t *testing.T, m brokertest.Mosquitto, conf string, port int) *brokertest.Broker {
	t.Helper()
	dir := brokertest.Dir(t)
	log := filepath.Join(dir, "broker.log")
	os.WriteFile(log, nil, 0o666)
	os.Chmod(log, 0o666)
	path := filepath.Join(dir, "broker.conf")
	if err := os.WriteFile(path, []byte(conf+"\nlog_dest file "+log+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return m.StartFile(t, path, log, port)
}
