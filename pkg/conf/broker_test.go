package conf_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// fixture is a broker folder laid out like a --root: the CA, the server
// certificate (for localhost and 127.0.0.1), a client certificate (CN
// esp32) and the password file are made by what `cert ca`, `cert server`,
// `cert client` and `user add` run (pkg/certs, pkg/passwd), owners and
// modes included; plus another CA that signed nothing the broker trusts.
type fixture struct {
	dir                          string
	ca, cert, key                string
	clientCert, clientKey, badCA string
	passwd                       string
	tlsCA                        *x509.CertPool
	badPool                      *x509.CertPool
	client                       tls.Certificate
}

const (
	testUser = "alice"
	testPass = "correct horse" // throwaway test credential
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	brokertest.Require(t)
	f := &fixture{dir: brokertest.Dir(t)}
	sys := system.NewReal(f.dir)
	// The target's accounts, so secrets get the mosquitto user as owner.
	if _, err := sys.EnsureDir("/etc", system.Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/passwd", "/etc/group"} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sys.WriteFile(p, data, system.Attr{Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	paths := certs.DefaultPaths()
	if _, err := certs.EnsureCA(sys, certs.CAOptions{Paths: paths, CommonName: "mosqprov test CA", KeyType: pki.ECDSAP256}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.EnsureServer(sys, certs.ServerOptions{Paths: paths, Names: []string{"localhost"}, IPs: []string{"127.0.0.1"}, KeyType: pki.ECDSAP256, Days: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.EnsureClient(sys, certs.ClientOptions{Paths: paths, Name: "esp32", KeyType: pki.ECDSAP256, Days: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := passwd.Converge(sys, layout.PasswordFile, []passwd.Desired{{Name: testUser, Password: testPass}}, passwd.Options{}); err != nil {
		t.Fatal(err)
	}
	client := certs.ClientFilesIn(path.Join(paths.ClientDir, "esp32"), "esp32")
	f.ca, f.cert, f.key = sys.HostPath(paths.BrokerCA), sys.HostPath(paths.ServerCert), sys.HostPath(paths.ServerKey)
	f.clientCert, f.clientKey = sys.HostPath(client.Cert), sys.HostPath(client.Key)
	f.passwd = sys.HostPath(layout.PasswordFile)

	other, err := pki.NewCA(rand.Reader, time.Now(), pki.CARequest{CommonName: "someone else's CA", KeyType: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	f.badCA = f.write(t, "other-ca.crt", other.CertPEM, false)
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	f.tlsCA = x509.NewCertPool()
	f.tlsCA.AppendCertsFromPEM(caPEM)
	f.badPool = x509.NewCertPool()
	f.badPool.AppendCertsFromPEM(other.CertPEM)
	if f.client, err = tls.LoadX509KeyPair(f.clientCert, f.clientKey); err != nil {
		t.Fatal(err)
	}
	return f
}

// write puts a fixture file in the folder; a secret is made the broker's
// (it reads keys after dropping to the mosquitto user).
func (f *fixture) write(t *testing.T, name string, data []byte, secret bool) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if secret {
		f.brokerOwns(t, p)
	} else {
		os.Chmod(p, 0o644)
	}
	return p
}

func (f *fixture) brokerOwns(t *testing.T, p string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return // the broker runs as us
	}
	sys := system.NewReal("/")
	acct, err := sys.LookupUser("mosquitto")
	if err != nil {
		t.Fatalf("user mosquitto: %v", err)
	}
	if err := os.Chown(p, acct.UID, acct.GID); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o600)
}

// config is cfg with the fixture's files and loopback binds on free ports.
func (f *fixture) config(types ...string) conf.Config {
	cfg := conf.Config{PasswordFile: f.passwd, CertFile: f.cert, KeyFile: f.key, CAFile: f.ca}
	for _, spec := range types {
		typ, opt, _ := strings.Cut(spec, ",")
		cfg.Listeners = append(cfg.Listeners, conf.Listener{Type: conf.Type(typ), Bind: "127.0.0.1", MutualTLS: opt == "mtls"})
	}
	return cfg
}

// start renders cfg and runs the real broker on it: standalone, or as a
// drop-in in a conf.d the test configuration includes, like Debian's.
func (f *fixture) start(t *testing.T, cfg conf.Config, standalone bool) *brokertest.Broker {
	t.Helper()
	var ports []int
	for i := range cfg.Listeners {
		cfg.Listeners[i].Port = brokertest.FreePort(t)
		ports = append(ports, cfg.Listeners[i].Port)
	}
	if standalone {
		log := filepath.Join(f.dir, "standalone.log")
		os.WriteFile(log, nil, 0o666)
		os.Chmod(log, 0o666)
		// Like Debian's /run/mosquitto and /var/lib/mosquitto: the broker
		// writes its pid file and database after dropping to its user.
		run := filepath.Join(f.dir, "run")
		os.Mkdir(run, 0o755)
		f.brokerOwns(t, run)
		os.Chmod(run, 0o755)
		cfg.Standalone = &conf.Standalone{PIDFile: filepath.Join(run, "mosquitto.pid"), PersistenceDir: run + "/", LogFile: log}
		p := filepath.Join(f.dir, "mosquitto.conf")
		if _, _, err := step(conf.Write(system.NewReal("/"), p, cfg)); err != nil {
			t.Fatal(err)
		}
		return brokertest.StartFile(t, p, log, ports...)
	}
	confd := filepath.Join(f.dir, "conf.d")
	if err := os.MkdirAll(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	change, _, err := step(conf.Write(system.NewReal("/"), filepath.Join(confd, "mosqprov.conf"), cfg))
	if err != nil || !change.Changed {
		t.Fatalf("write drop-in: %+v %v", change, err)
	}
	return brokertest.Start(t, f.dir, "include_dir "+confd+"\n", ports...)
}

// TestListenerCombinations renders each combination of listeners, starts the
// real broker on it and connects to every listener with a real client:
// mosquitto_pub for MQTT and MQTT over TLS (CA and host name verified),
// paho for WebSockets (ws:// and wss://), with a password and without, and
// with and without a client certificate where mutual TLS is on.
func TestListenerCombinations(t *testing.T) {
	combos := []struct {
		name       string
		types      []string
		standalone bool
	}{
		{"article", []string{"mqtt", "mqtts", "wss"}, false},
		{"plain", []string{"mqtt"}, true},
		{"tls-only", []string{"mqtts"}, false},
		{"websockets", []string{"mqtt", "ws"}, true},
		{"all-four", []string{"mqtt", "mqtts", "ws", "wss"}, true},
		{"mutual-tls", []string{"mqtts,mtls", "wss,mtls"}, false},
		{"mixed-mtls", []string{"mqtt", "mqtts", "mqtts,mtls"}, true},
	}
	for _, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			cfg := f.config(c.types...)
			b := f.start(t, cfg, c.standalone)
			// start assigned the ports on a copy: read them back from the file.
			rendered := readListeners(t, b)
			for i, l := range rendered {
				if l.Type != cfg.Listeners[i].Type {
					t.Fatalf("listener %d is %s, want %s", i, l.Type, cfg.Listeners[i].Type)
				}
				t.Run(fmt.Sprintf("%s-%d", l.Type, i), func(t *testing.T) { f.probe(t, b, l) })
			}
		})
	}
}

// readListeners reads the listeners back from the file the broker runs on.
func readListeners(t *testing.T, b *brokertest.Broker) []conf.Listener {
	t.Helper()
	data, err := os.ReadFile(b.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if dir, ok := strings.CutPrefix(string(data), "include_dir "); ok {
		dir, _, _ = strings.Cut(dir, "\n")
		if data, err = os.ReadFile(filepath.Join(dir, "mosqprov.conf")); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := conf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Listeners
}

func (f *fixture) probe(t *testing.T, b *brokertest.Broker, l conf.Listener) {
	withPassword := brokertest.Client{Host: "localhost", Port: l.Port, User: testUser, Password: testPass}
	anonymous := brokertest.Client{Host: "localhost", Port: l.Port}
	wrongPassword := brokertest.Client{Host: "localhost", Port: l.Port, User: testUser, Password: "wrong"}
	switch l.Type {
	case conf.MQTT:
		mustDeliver(t, b, withPassword)
		mustRefuse(t, anonymous, "anonymous")
		mustRefuse(t, wrongPassword, "wrong password")
	case conf.MQTTS:
		tlsArgs := []string{"--cafile", f.ca}
		certArgs := []string{"--cafile", f.ca, "--cert", f.clientCert, "--key", f.clientKey}
		withPassword.Extra, anonymous.Extra = tlsArgs, tlsArgs
		// The wrong CA proves the client really verifies the chain.
		badCA := withPassword
		badCA.Extra = []string{"--cafile", f.badCA}
		mustRefuse(t, badCA, "server certificate from an untrusted CA")
		if l.MutualTLS {
			mustDeliver(t, b, brokertest.Client{Host: "localhost", Port: l.Port, Extra: certArgs})
			mustRefuse(t, withPassword, "password without client certificate")
		} else {
			mustDeliver(t, b, withPassword)
			mustRefuse(t, anonymous, "anonymous over TLS")
		}
	case conf.WS:
		url := fmt.Sprintf("ws://127.0.0.1:%d", l.Port)
		mustWSDeliver(t, b, url, nil, testUser, testPass)
		if err := wsConnect(url, nil, "", ""); err == nil {
			t.Errorf("anonymous WebSockets client was accepted")
		}
	case conf.WSS:
		url := fmt.Sprintf("wss://localhost:%d", l.Port)
		good := &tls.Config{RootCAs: f.tlsCA}
		if err := wsConnect(url, &tls.Config{RootCAs: f.badPool}, testUser, testPass); err == nil {
			t.Errorf("wss client trusted a server certificate from another CA")
		}
		if l.MutualTLS {
			withCert := &tls.Config{RootCAs: f.tlsCA, Certificates: []tls.Certificate{f.client}}
			mustWSDeliver(t, b, url, withCert, "", "")
			if err := wsConnect(url, good, testUser, testPass); err == nil {
				t.Errorf("wss client without a certificate was accepted on a mutual TLS listener")
			}
		} else {
			mustWSDeliver(t, b, url, good, testUser, testPass)
			if err := wsConnect(url, good, "", ""); err == nil {
				t.Errorf("anonymous wss client was accepted")
			}
		}
	}
}

func mustDeliver(t *testing.T, b *brokertest.Broker, c brokertest.Client) {
	t.Helper()
	ok, err := brokertest.Roundtrip(c, c, "test/roundtrip", "hello")
	if err != nil || !ok {
		t.Errorf("roundtrip on port %d: delivered=%v err=%v\nlog:\n%s", c.Port, ok, err, b.ReadLog())
	}
}

func mustRefuse(t *testing.T, c brokertest.Client, what string) {
	t.Helper()
	if err := c.Publish("test/refused", "x"); err == nil {
		t.Errorf("%s: publish on port %d was accepted", what, c.Port)
	}
}

// wsConnect connects a paho client over WebSockets and disconnects.
func wsConnect(url string, tc *tls.Config, user, pass string) error {
	c, err := pahoClient(url, tc, user, pass, nil)
	if err != nil {
		return err
	}
	c.Disconnect(50)
	return nil
}

func pahoClient(url string, tc *tls.Config, user, pass string, onMsg mqtt.MessageHandler) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(url).
		SetClientID(fmt.Sprintf("conf-test-%d", time.Now().UnixNano())).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	if onMsg != nil {
		o.SetDefaultPublishHandler(onMsg)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s: timed out", url)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	return c, nil
}

// mustWSDeliver subscribes and publishes over WebSockets and waits for the
// message to come back.
func mustWSDeliver(t *testing.T, b *brokertest.Broker, url string, tc *tls.Config, user, pass string) {
	t.Helper()
	got := make(chan string, 1)
	c, err := pahoClient(url, tc, user, pass, nil)
	if err != nil {
		t.Errorf("%v\nlog:\n%s", err, b.ReadLog())
		return
	}
	defer c.Disconnect(50)
	sub := c.Subscribe("test/ws", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	if !sub.WaitTimeout(5*time.Second) || sub.Error() != nil {
		t.Errorf("subscribe over %s: %v", url, sub.Error())
		return
	}
	pub := c.Publish("test/ws", 1, false, "over websockets")
	if !pub.WaitTimeout(5*time.Second) || pub.Error() != nil {
		t.Errorf("publish over %s: %v", url, pub.Error())
		return
	}
	select {
	case m := <-got:
		if m != "over websockets" {
			t.Errorf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("message over %s not delivered\nlog:\n%s", url, b.ReadLog())
	}
}

// TestBrokerRefusesWebSocketsOnly proves the rule Validate enforces: 2.0.11
// will not start with WebSockets listeners only.
func TestBrokerRefusesWebSocketsOnly(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("ws")
	cfg.Listeners[0].Port = brokertest.FreePort(t)
	if _, err := conf.Render(cfg); err == nil || !strings.Contains(err.Error(), "WebSockets listeners only") {
		t.Fatalf("Render: %v, want the WebSockets-only refusal", err)
	}
	// The same file, written by hand, really doesn't start. The broker opens
	// the WebSockets socket before it gives up, so a dial can succeed for a
	// moment: watch the process exit instead.
	main := filepath.Join(f.dir, "ws-only.conf")
	os.WriteFile(main, []byte(fmt.Sprintf("allow_anonymous true\nlistener %d 127.0.0.1\nprotocol websockets\nlog_dest stderr\n", cfg.Listeners[0].Port)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto" // not on a user's PATH
	}
	out, err := exec.CommandContext(ctx, bin, "-c", main).CombinedOutput()
	if ctx.Err() != nil || err == nil || !strings.Contains(string(out), "Unable to start any listening sockets") {
		t.Fatalf("mosquitto with only a WebSockets listener: %v (context %v)\n%s", err, ctx.Err(), out)
	}
}

// TestPortClash proves what conf check says: a port of our drop-in that
// another conf.d file also listens on makes the real broker fail with
// "Address already in use", and Check reports it.
func TestPortClash(t *testing.T) {
	f := newFixture(t)
	confd := filepath.Join(f.dir, "conf.d")
	os.MkdirAll(confd, 0o755)
	port := brokertest.FreePort(t)
	if err := os.WriteFile(filepath.Join(confd, "old.conf"), []byte(fmt.Sprintf("# someone's earlier attempt\nlistener %d\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := f.config("mqtt")
	cfg.Listeners[0].Port = port
	sys := system.NewReal("/")
	ours := filepath.Join(confd, "mosqprov.conf")
	if _, _, err := step(conf.Write(sys, ours, cfg)); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(f.dir, "main.conf")
	os.WriteFile(main, []byte("include_dir "+confd+"\n"), 0o644)
	findings := conf.CheckAgainst(sys, cfg, ours, main)
	if !hasFinding(findings, "port-clash", fmt.Sprintf("port %d (mqtt) is also a listener in %s:2", port, filepath.Join(confd, "old.conf"))) {
		t.Fatalf("no port clash finding: %+v", findings)
	}
	b, err := brokertest.StartErr(f.dir, "include_dir "+confd+"\n", port)
	if err == nil {
		b.Stop()
		t.Fatal("the broker started despite the clash")
	}
	if !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("broker failed differently: %v", err)
	}
}

func hasFinding(fs []conf.Finding, check, text string) bool {
	for _, f := range fs {
		if f.Check == check && strings.Contains(f.Message, text) {
			return true
		}
	}
	return false
}

// TestReloadPicksUpACLFileLine proves the Need Write returns: adding
// acl_file to the drop-in is a Reload, and after SIGHUP the running broker
// enforces the ACL; dropping the line again lifts it, also on reload.
func TestReloadPicksUpACLFileLine(t *testing.T) {
	f := newFixture(t)
	acl := f.write(t, "acl", []byte("user "+testUser+"\ntopic readwrite allowed/#\n"), true)
	confd := filepath.Join(f.dir, "conf.d")
	os.MkdirAll(confd, 0o755)
	dropIn := filepath.Join(confd, "mosqprov.conf")
	sys := system.NewReal("/")
	cfg := f.config("mqtt")
	cfg.Listeners[0].Port = brokertest.FreePort(t)
	if _, need, err := step(conf.Write(sys, dropIn, cfg)); err != nil || need != system.NeedRestart {
		t.Fatalf("first write: need %v, err %v; want restart", need, err)
	}
	b := brokertest.Start(t, f.dir, "include_dir "+confd+"\n", cfg.Listeners[0].Port)
	c := brokertest.Client{Port: cfg.Listeners[0].Port, User: testUser, Password: testPass}
	if ok, err := brokertest.Roundtrip(c, c, "elsewhere/x", "1"); err != nil || !ok {
		t.Fatalf("without ACL: delivered=%v err=%v", ok, err)
	}

	cfg.ACLFile = acl
	if _, need, err := step(conf.Write(sys, dropIn, cfg)); err != nil || need != system.NeedReload {
		t.Fatalf("adding acl_file: need %v, err %v; want reload", need, err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if ok, err := brokertest.Roundtrip(c, c, "elsewhere/x", "2"); err != nil || ok {
		t.Fatalf("after reload with acl_file: delivered=%v err=%v, want not delivered\n%s", ok, err, b.ReadLog())
	}
	if ok, err := brokertest.Roundtrip(c, c, "allowed/x", "3"); err != nil || !ok {
		t.Fatalf("granted topic after reload: delivered=%v err=%v", ok, err)
	}

	cfg.ACLFile = ""
	if _, need, err := step(conf.Write(sys, dropIn, cfg)); err != nil || need != system.NeedReload {
		t.Fatalf("dropping acl_file: need %v, err %v; want reload", need, err)
	}
	b.Reload()
	time.Sleep(300 * time.Millisecond)
	if ok, err := brokertest.Roundtrip(c, c, "elsewhere/x", "4"); err != nil || !ok {
		t.Fatalf("after dropping acl_file: delivered=%v err=%v", ok, err)
	}
}

// TestTLSVersionMinimum proves tls_version tlsv1.3 on the real broker: an
// mqtts listener refuses a TLS 1.2 client, while 2.0.11 ignores it on a wss
// listener (the warning conf check gives). If a later broker honours it
// there, this test fails and the warning should go.
func TestTLSVersionMinimum(t *testing.T) {
	f := newFixture(t)
	cfg := f.config("mqtts", "wss")
	for i := range cfg.Listeners {
		cfg.Listeners[i].TLSVersion = conf.TLS13
	}
	b := f.start(t, cfg, false)
	tls12 := &tls.Config{RootCAs: f.tlsCA, ServerName: "localhost", MaxVersion: tls.VersionTLS12}
	mqtts, wss := cfg.Listeners[0].Port, cfg.Listeners[1].Port

	if c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", mqtts), tls12); err == nil {
		c.Close()
		t.Errorf("mqtts with tls_version tlsv1.3 accepted a TLS 1.2 handshake")
	}
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", mqtts), &tls.Config{RootCAs: f.tlsCA, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("mqtts TLS 1.3 handshake: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("mqtts negotiated %x, want TLS 1.3", v)
	}
	c.Close()

	mustWSDeliver(t, b, fmt.Sprintf("wss://localhost:%d", wss), tls12, testUser, testPass)
	if !hasFinding(conf.Warnings(cfg), "websockets-tls", fmt.Sprintf("wss listener on port %d", wss)) {
		t.Errorf("no websockets-tls warning for %+v", cfg.Listeners[1])
	}
}

// TestIncludeOrderMatchesBroker proves ReadBroker reads include_dir files in
// the broker's order (case-insensitive first, upper case before lower, '_'
// after letters): the real broker opens its listeners in file order, and
// its log says in which.
func TestIncludeOrderMatchesBroker(t *testing.T) {
	brokertest.Require(t)
	dir := brokertest.Dir(t)
	confd := filepath.Join(dir, "conf.d")
	os.MkdirAll(confd, 0o755)
	var ports []int
	for _, name := range []string{"b", "_x", "aa", "B", "Ab", "a1"} {
		port := brokertest.FreePort(t)
		ports = append(ports, port)
		if err := os.WriteFile(filepath.Join(confd, name+".conf"), []byte(fmt.Sprintf("listener %d 127.0.0.1\n", port)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := brokertest.Start(t, dir, "allow_anonymous true\ninclude_dir "+confd+"\n", ports...)
	var opened []int
	for _, line := range strings.Split(b.ReadLog(), "\n") {
		var port int
		if i := strings.Index(line, "Opening ipv4 listen socket on port "); i >= 0 {
			fmt.Sscanf(line[i:], "Opening ipv4 listen socket on port %d.", &port)
			opened = append(opened, port)
		}
	}
	main := filepath.Join(dir, "main.conf")
	os.WriteFile(main, []byte("include_dir "+confd+"\n"), 0o644)
	read, err := conf.ReadBroker(system.NewReal("/"), main)
	if err != nil {
		t.Fatal(err)
	}
	var ours []int
	for _, l := range read.Listeners {
		ours = append(ours, l.Port)
	}
	if len(opened) != len(ports) || fmt.Sprint(opened) != fmt.Sprint(ours) {
		t.Errorf("broker opened %v, ReadBroker reads %v (files %v)", opened, ours, read.Files)
	}
}

// TestWithDebianMainConf runs the drop-in next to Debian's own
// /etc/mosquitto/mosquitto.conf (pid_file, persistence, log_dest file,
// include_dir), only its four paths moved into the test folder: the broker
// starts and serves every listener, conf check finds nothing wrong, and the
// reader the service commands use finds the listeners and the log file.
func TestWithDebianMainConf(t *testing.T) {
	f := newFixture(t)
	debian, err := os.ReadFile("/etc/mosquitto/mosquitto.conf")
	if err != nil {
		t.Skipf("Debian's mosquitto.conf: %v", err)
	}
	for _, d := range []string{"run", "lib", "log", "conf.d"} {
		os.MkdirAll(filepath.Join(f.dir, d), 0o755)
		if d != "conf.d" {
			f.brokerOwns(t, filepath.Join(f.dir, d))
			os.Chmod(filepath.Join(f.dir, d), 0o755)
		}
	}
	log := filepath.Join(f.dir, "log", "mosquitto.log")
	main := string(debian)
	for old, moved := range map[string]string{
		"pid_file /run/mosquitto/mosquitto.pid":          "pid_file " + filepath.Join(f.dir, "run", "mosquitto.pid"),
		"persistence_location /var/lib/mosquitto/":       "persistence_location " + filepath.Join(f.dir, "lib") + "/",
		"log_dest file /var/log/mosquitto/mosquitto.log": "log_dest file " + log,
		"include_dir /etc/mosquitto/conf.d":              "include_dir " + filepath.Join(f.dir, "conf.d"),
	} {
		if !strings.Contains(main, "\n"+old+"\n") {
			t.Fatalf("Debian's mosquitto.conf has no line %q: this test no longer tests what it says\n%s", old, debian)
		}
		main = strings.Replace(main, "\n"+old+"\n", "\n"+moved+"\n", 1)
	}
	mainPath := filepath.Join(f.dir, "mosquitto.conf")
	os.WriteFile(mainPath, []byte(main), 0o644)

	cfg := f.config("mqtt", "mqtts", "wss")
	var ports []int
	for i := range cfg.Listeners {
		cfg.Listeners[i].Port = brokertest.FreePort(t)
		ports = append(ports, cfg.Listeners[i].Port)
	}
	sys := system.NewReal("/")
	dropIn := filepath.Join(f.dir, "conf.d", "mosqprov.conf")
	if _, _, err := step(conf.Write(sys, dropIn, cfg)); err != nil {
		t.Fatal(err)
	}
	if findings := conf.CheckAgainst(sys, cfg, dropIn, mainPath); conf.Failed(findings) {
		t.Errorf("conf check: %+v", findings)
	}
	b := brokertest.StartFile(t, mainPath, log, ports...)
	for _, l := range cfg.Listeners {
		t.Run(string(l.Type), func(t *testing.T) { f.probe(t, b, l) })
	}

	read, err := conf.ReadBroker(sys, mainPath)
	if err != nil {
		t.Fatal(err)
	}
	var bound []int
	for _, l := range read.Bound() {
		bound = append(bound, l.Port)
	}
	if fmt.Sprint(bound) != fmt.Sprint(ports) || fmt.Sprint(read.LogFiles) != fmt.Sprint([]string{log}) {
		t.Errorf("ReadBroker: listeners %v (want %v), log files %v (want %s)", bound, ports, read.LogFiles, log)
	}
}

// TestDuplicateSetting proves the "duplicate" finding: password_file set in
// another conf.d file as well makes the real broker refuse to start.
func TestDuplicateSetting(t *testing.T) {
	f := newFixture(t)
	cfg, sys, confd, ours, main := f.withConfD(t, "local.conf", "password_file "+f.passwd+"\n")
	if findings := conf.CheckAgainst(sys, cfg, ours, main); !hasFinding(findings, "duplicate", "password_file is also set in "+filepath.Join(confd, "local.conf")+":1") {
		t.Fatalf("no duplicate finding: %+v", findings)
	}
	b, err := brokertest.StartErr(f.dir, "include_dir "+confd+"\n", cfg.Listeners[0].Port)
	if err == nil {
		b.Stop()
		t.Fatal("the broker started with password_file set twice")
	}
	if !strings.Contains(err.Error(), "Duplicate password_file value in configuration") {
		t.Fatalf("broker failed differently: %v", err)
	}
}

// TestAllowAnonymousOverride proves the "override" warning: an
// allow_anonymous in a conf.d file read after ours wins on the real broker.
func TestAllowAnonymousOverride(t *testing.T) {
	f := newFixture(t)
	cfg, sys, confd, ours, main := f.withConfD(t, "zz-local.conf", "allow_anonymous true\n")
	later := filepath.Join(confd, "zz-local.conf")
	if findings := conf.CheckAgainst(sys, cfg, ours, main); !hasFinding(findings, "override", "allow_anonymous true in "+later+":1 is read after") {
		t.Fatalf("no override warning: %+v", findings)
	}
	b := brokertest.Start(t, f.dir, "include_dir "+confd+"\n", cfg.Listeners[0].Port)
	mustDeliver(t, b, brokertest.Client{Port: cfg.Listeners[0].Port})
}

// withConfD lays out a main config that includes conf.d, holding another
// file (name, content) beside our drop-in rendered from an mqtt listener on
// a free port.
func (f *fixture) withConfD(t *testing.T, name, content string) (cfg conf.Config, sys system.System, confd, ours, main string) {
	t.Helper()
	confd = filepath.Join(f.dir, "conf.d")
	if err := os.MkdirAll(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confd, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = f.config("mqtt")
	cfg.Listeners[0].Port = brokertest.FreePort(t)
	sys = system.NewReal("/")
	ours = filepath.Join(confd, "mosqprov.conf")
	if _, _, err := step(conf.Write(sys, ours, cfg)); err != nil {
		t.Fatal(err)
	}
	main = filepath.Join(f.dir, "main.conf")
	if err := os.WriteFile(main, []byte("include_dir "+confd+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, sys, confd, ours, main
}
