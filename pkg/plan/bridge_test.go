package plan

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/probe"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// hub is broker B, the remote: provisioned by mosqprov under its own root,
// with a TLS listener for passwords and one requiring client certificates.
// Its ACL lets the bridge's user pi1 use pi1/# only, and app everything.
type hub struct {
	root        string
	tls, mutual int
	pi1, app    string // passwords
	broker      *brokertest.Broker
	m           brokertest.Mosquitto
	ca          string // host path of its CA certificate
	clientCert  string // host paths of the client certificate it issued for pi1
	clientKey   string
}

func startHub(t *testing.T, m brokertest.Mosquitto) *hub {
	t.Helper()
	h := &hub{m: m, root: newRoot(t), tls: brokertest.FreePort(t), mutual: brokertest.FreePort(t), pi1: "pi1 bridge secret", app: "app-secret"}
	s, err := spec.Parse("hub.yaml", []byte(fmt.Sprintf(`
hostname: localhost
ips: [127.0.0.1]
listeners:
  - {type: mqtts, port: %d}
  - {type: mqtts, port: %d, mutual_tls: true}
users:
  - {name: pi1, password_env: HUB_PI1}
  - {name: app, password_env: HUB_APP}
acl:
  - {user: pi1, readwrite: ["pi1/#"]}
  - {user: app, readwrite: ["#"]}
`, h.tls, h.mutual)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HUB_PI1": h.pi1, "HUB_APP": h.app}
	sys := realSys(h.root)
	if _, err := Converge(context.Background(), sys, s, Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}); err != nil {
		t.Fatal(err)
	}
	// The client certificate a mosqprov remote issues for a bridge: CN=pi1,
	// which use_identity_as_username makes the user pi1.
	if _, err := certs.EnsureClient(sys, certs.ClientOptions{Paths: certs.DefaultPaths(), Name: "pi1"}); err != nil {
		t.Fatal(err)
	}
	files := certs.ClientFilesIn(layout.ClientDir+"/pi1", "pi1")
	h.ca = filepath.Join(h.root, layout.BrokerCACert)
	h.clientCert, h.clientKey = filepath.Join(h.root, files.Cert), filepath.Join(h.root, files.Key)
	h.broker = h.m.Start(t, h.root, rootedConf(t, h.root, layout.DropIn), h.tls, h.mutual)
	return h
}

func (h *hub) client(user, pw string) brokertest.Client {
	return brokertest.Client{Host: "localhost", Port: h.tls, User: user, Password: pw, Extra: []string{"--cafile", h.ca}}
}

// rootedConf reads a file apply wrote under root, with its target paths
// moved under root, for a test broker.
func rootedConf(t *testing.T, root string, paths ...string) string {
	t.Helper()
	var out strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(rootPaths(root, string(data)) + "\n")
	}
	return out.String()
}

func rootPaths(root, conf string) string {
	return strings.ReplaceAll(conf, " /etc/mosquitto/", " "+root+"/etc/mosquitto/")
}

// pi is broker A, the local one, bridged to the hub.
type pi struct {
	root   string
	port   int
	pw     string
	env    map[string]string
	broker *brokertest.Broker
	m      brokertest.Mosquitto
	inc    string
}

func (p *pi) options() Options {
	return Options{LookupEnv: func(k string) (string, bool) { v, ok := p.env[k]; return v, ok }}
}

func (p *pi) client() brokertest.Client {
	return brokertest.Client{Port: p.port, User: "local", Password: p.pw}
}

func (p *pi) spec(t *testing.T, bridges string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse(filepath.Join(t.TempDir(), "pi.yaml"), []byte(fmt.Sprintf(`
listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
users:
  - {name: local, password_env: PI_LOCAL}
%s`, p.port, bridges)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs A's broker the way Debian's does: a main file that includes a
// conf.d holding A's two files with the owner and mode apply gave them (the
// paths in them moved under A's root), so the broker, once it has dropped
// to the mosquitto user, must still be able to read them on SIGHUP.
func (p *pi) start(t *testing.T) {
	t.Helper()
	if p.broker != nil {
		noDeprecation(t, p.m, p.broker)
		p.broker.Stop()
	}
	p.inc = filepath.Join(p.root, "test-conf.d")
	os.RemoveAll(p.inc)
	if err := os.Mkdir(p.inc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{layout.DropIn, bridge.File} {
		src := filepath.Join(p.root, f)
		data, err := os.ReadFile(src)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(src)
		st := fi.Sys().(*syscall.Stat_t)
		dst := filepath.Join(p.inc, filepath.Base(f))
		if err := os.WriteFile(dst, []byte(rootPaths(p.root, string(data))), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dst, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dst, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	p.broker = p.m.Start(t, p.root, "include_dir "+p.inc+"\n", p.port)
}

// bridgeState waits for the bridge's state on A's $SYS topic to be want.
func bridgeState(t *testing.T, c brokertest.Client, topic, want string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		s, err := c.Subscribe(topic, 1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, _ = s.Wait()
		if len(got) == 1 && got[0] == topic+" "+want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: got %q, want %s", topic, got, want)
}

// flows reports whether a message published as pub on topic reaches sub on
// subTopic (the bridge may rename it).
func flows(t *testing.T, sub brokertest.Client, subTopic string, pub brokertest.Client, topic string) bool {
	t.Helper()
	msg := fmt.Sprintf("m%d", time.Now().UnixNano())
	s, err := sub.Subscribe(subTopic, 1, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := pub.Publish(topic, msg); err != nil {
		t.Fatal(err)
	}
	lines, _ := s.Wait()
	for _, l := range lines {
		if l == subTopic+" "+msg {
			return true
		}
	}
	return false
}

// Two brokers provisioned by mosqprov, each under its own root, bridged
// over TLS: first with a password, then with a client certificate the
// hub's CA issued. Messages flow in each configured direction and not in
// the others, the hub's ACL holds for the bridge's user, a second apply
// changes nothing, a reload keeps the bridge, and a bridge removed from the
// spec is gone after apply. Against each broker of brokertest.Versions
// (2.0.11, 2.0.21, 2.1), both brokers of that version, and neither logs a
// deprecation for what mosqprov wrote.
func TestBridgeBetweenTwoBrokers(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, testBridgeBetweenTwoBrokers)
}

func testBridgeBetweenTwoBrokers(t *testing.T, m brokertest.Mosquitto) {
	h := startHub(t, m)
	app := h.client("app", h.app)

	a := &pi{m: m, root: newRoot(t), port: brokertest.FreePort(t), pw: "local-secret"}
	os.WriteFile(filepath.Join(a.root, "etc/hostname"), []byte("raspberrypi\n"), 0o644)
	os.WriteFile(filepath.Join(a.root, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	a.env = map[string]string{"PI_LOCAL": a.pw, "HUB_PASSWORD": h.pi1}
	topics := `
    topics:
      - {pattern: "sensors/#", direction: out, qos: 1, remote_prefix: pi1/}
      - {pattern: "cmd/#", direction: in, qos: 1, remote_prefix: pi1/}
      - {pattern: "both/#", direction: both, qos: 1, remote_prefix: pi1/}
      - {pattern: "secret/#", direction: out, qos: 1, remote_prefix: other/}`
	withPassword := fmt.Sprintf(`bridges:
  - name: hub
    addresses: ["localhost:%d"]
    tls: {ca_file: %s}
    username: pi1
    password_env: HUB_PASSWORD
    keepalive: 30
    cleansession: true%s
`, h.tls, h.ca, topics)
	ctx := context.Background()
	s := a.spec(t, withPassword)

	// Plan shows the change, with the password masked.
	dry := system.NewDryRun(realSys(a.root))
	if _, err := Converge(ctx, dry, s, a.options()); err != nil {
		t.Fatal(err)
	}
	for _, d := range PlannedDiffs(dry.Changes()) {
		if strings.Contains(d.Diff, h.pi1) {
			t.Fatalf("the plan shows the remote password:\n%s", d.Diff)
		}
		if d.Path == bridge.File && !strings.Contains(d.Diff, "remote_password (password masked)") {
			t.Fatalf("the plan of %s does not say the password is masked:\n%s", d.Path, d.Diff)
		}
	}

	res, err := Converge(ctx, realSys(a.root), s, a.options())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Need != system.NeedRestart {
		t.Fatalf("first apply: changed=%v need=%v", res.Changed, res.Need)
	}
	fi, err := os.Stat(filepath.Join(a.root, bridge.File))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || st.Uid != 0 || int(st.Gid) != mosquittoGID(t) {
		t.Fatalf("%s: mode %o uid %d gid %d, want 0640 root:mosquitto", bridge.File, fi.Mode().Perm(), st.Uid, st.Gid)
	}
	stateJSON, _ := os.ReadFile(filepath.Join(a.root, "etc/mosqprov/state.json"))
	if strings.Contains(string(stateJSON), "mosqprov-bridges") == false {
		t.Fatalf("state.json does not record the bridges file:\n%s", stateJSON)
	}
	clientID := bridge.ClientIDFor("hub", "raspberrypi", []byte("0123456789abcdef0123456789abcdef"))
	stateTopic := "$SYS/broker/connection/" + clientID + "/state"

	a.start(t)
	local := a.client()
	bridgeState(t, local, stateTopic, "1")

	checkFlows := func(t *testing.T, stage string) {
		t.Helper()
		for _, c := range []struct {
			what     string
			sub      brokertest.Client
			subTopic string
			pub      brokertest.Client
			pubTopic string
			want     bool
		}{
			{"out: local sensors reach the hub under pi1/", app, "pi1/sensors/t", local, "sensors/t", true},
			{"out only: the hub's pi1/sensors do not come back", local, "sensors/u", app, "pi1/sensors/u", false},
			{"in: the hub's commands reach the Pi", local, "cmd/open", app, "pi1/cmd/open", true},
			{"in only: local commands do not go out", app, "pi1/cmd/close", local, "cmd/close", false},
			{"both, outwards", app, "pi1/both/x", local, "both/x", true},
			{"both, inwards", local, "both/y", app, "pi1/both/y", true},
			{"the hub's ACL: pi1 may not publish to other/#", app, "other/secret/k", local, "secret/k", false},
		} {
			if got := flows(t, c.sub, c.subTopic, c.pub, c.pubTopic); got != c.want {
				t.Errorf("%s: %s: delivered=%v, want %v", stage, c.what, got, c.want)
			}
		}
	}
	checkFlows(t, "password")

	// The broker reads the file again on SIGHUP as the mosquitto user: the
	// reload succeeds and the bridge stays up.
	if err := a.broker.Reload(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, a.broker, "Reloading config.")
	time.Sleep(500 * time.Millisecond)
	log := a.broker.ReadLog()
	if _, after, _ := strings.Cut(log, "Reloading config."); strings.Contains(after, "Error") {
		t.Fatalf("reload failed:\n%s", log)
	}
	bridgeState(t, local, stateTopic, "1")
	if ok := flows(t, app, "pi1/sensors/r", local, "sensors/r"); !ok {
		t.Fatal("after a reload the bridge no longer forwards")
	}

	// verify's bridge check: connected, and a message through it.
	checkVerify(t, a, "connected", true)

	// With the hub down, the broker says so and verify fails.
	h.broker.Stop()
	bridgeState(t, local, stateTopic, "0")
	checkVerify(t, a, "not connected", false)
	h.broker = h.m.Start(t, h.root, rootedConf(t, h.root, layout.DropIn), h.tls, h.mutual)

	// A second apply changes nothing and writes nothing.
	before := mtimes(t, a.root)
	sys2 := realSys(a.root)
	res2, err := Converge(ctx, sys2, s, a.options())
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || len(sys2.Changes()) != 0 || res2.Need != system.NeedNothing {
		t.Fatalf("second apply: changed=%v files=%v need=%v", res2.Changed, sys2.Changes(), res2.Need)
	}
	if after := mtimes(t, a.root); !maps.Equal(before, after) {
		t.Fatalf("second apply touched files:\nbefore %v\nafter  %v", before, after)
	}

	// Again with the client certificate the hub issued, on its mutual TLS
	// listener, and no password.
	withCert := fmt.Sprintf(`bridges:
  - name: hub
    addresses: ["localhost:%d"]
    tls: {ca_file: %s, cert_file: %s, key_file: %s}%s
`, h.mutual, h.ca, h.clientCert, h.clientKey, topics)
	s = a.spec(t, withCert)
	if res, err = Converge(ctx, realSys(a.root), s, a.options()); err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Need != system.NeedRestart {
		t.Fatalf("apply with a client certificate: changed=%v need=%v", res.Changed, res.Need)
	}
	key, err := os.Stat(filepath.Join(a.root, bridge.Dir, "hub.key"))
	if err != nil || key.Mode().Perm() != 0o600 || int(key.Sys().(*syscall.Stat_t).Uid) != mosquittoUID(t) {
		t.Fatalf("the bridge's key: %v %v, want mosquitto's, 0600", err, key)
	}
	a.start(t)
	bridgeState(t, local, stateTopic, "1")
	checkFlows(t, "client certificate")
	checkVerify(t, a, "connected", true)

	// The bridge removed from the spec is gone after apply, with its files.
	s = a.spec(t, "")
	if res, err = Converge(ctx, realSys(a.root), s, a.options()); err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Need != system.NeedRestart {
		t.Fatalf("apply without the bridge: changed=%v need=%v", res.Changed, res.Need)
	}
	for _, f := range []string{bridge.File, bridge.Dir + "/hub.key", bridge.Dir + "/hub.crt", bridge.Dir + "/hub-ca.crt"} {
		if _, err := os.Stat(filepath.Join(a.root, f)); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the bridge left the spec (%v)", f, err)
		}
	}
	a.start(t)
	if ok := flows(t, app, "pi1/sensors/gone", local, "sensors/gone"); ok {
		t.Fatal("a message still crosses the removed bridge")
	}
	noDeprecation(t, m, a.broker)
	noDeprecation(t, m, h.broker)
}

func waitLog(t *testing.T, b *brokertest.Broker, text string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(b.ReadLog(), text) {
			return
		}
	}
	t.Fatalf("the broker's log never said %q:\n%s", text, b.ReadLog())
}

func mosquittoGID(t *testing.T) int {
	gid, err := realSys("/").LookupGroup(layout.BrokerUser)
	if err != nil {
		t.Fatal(err)
	}
	return gid
}

func mosquittoUID(t *testing.T) int {
	acct, err := realSys("/").LookupUser(layout.BrokerUser)
	if err != nil {
		t.Fatal(err)
	}
	return acct.UID
}

// checkVerify runs verify's bridge check (pkg/probe) against A as its
// user, with the bridge as A's bridges file has it.
func checkVerify(t *testing.T, a *pi, state string, ok bool) {
	t.Helper()
	bridges, err := bridge.Read(realSys(a.root))
	if err != nil || len(bridges) != 1 {
		t.Fatalf("bridges file: %v %v", bridges, err)
	}
	r := probe.ProbeBridge(context.Background(), bridges[0], probe.BridgeOptions{
		Local:   probe.Target{Name: "mqtt", Scheme: probe.MQTT, Host: "127.0.0.1", Port: a.port},
		Options: probe.Options{User: "local", Password: a.pw, Timeout: 5 * time.Second},
	})
	if r.State != state || r.OK != ok {
		t.Fatalf("verify: state %q ok %v, want %q %v: %+v", r.State, r.OK, state, ok, r.Checks)
	}
	if ok {
		if len(r.Checks) != 2 || r.Checks[1].Name != probe.CheckBridgeTrip || r.Checks[1].Status != probe.OK {
			t.Fatalf("verify sent no message through the bridge: %+v", r.Checks)
		}
	}
}
