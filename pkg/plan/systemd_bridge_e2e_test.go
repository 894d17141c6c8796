package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/internal/nspawn"
	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// inUnit is a booted container (TestApplyInRealSystemd's) whose broker is
// Debian's mosquitto package run by its own systemd unit, driven by the
// mosqprov binary inside the container.
type inUnit struct {
	ctx context.Context
	c   *nspawn.Container
}

// unitReport is `mosqprov apply -o json`.
type unitReport struct {
	Changed bool `json:"changed"`
	Changes []struct {
		What   string `json:"what"`
		Action string `json:"action"`
		Path   string `json:"path"`
		Detail string `json:"detail"`
	} `json:"changes"`
	Error string `json:"error"`
}

// did reports whether the run did action on something whose name starts with what.
func (r unitReport) did(what, action string) bool {
	for _, ch := range r.Changes {
		if strings.HasPrefix(ch.What, what) && ch.Action == action {
			return true
		}
	}
	return false
}

// run runs a command inside the container; a non-zero exit fails the test.
func (u *inUnit) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := u.c.Exec(u.ctx, name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// apply runs `mosqprov apply --yes -o json` (after env, KEY=VALUE words),
// which must succeed.
func (u *inUnit) apply(t *testing.T, env ...string) unitReport {
	t.Helper()
	return u.applyExit(t, 0, env...)
}

// applyExit is apply with the exit code it must end with.
func (u *inUnit) applyExit(t *testing.T, code int, env ...string) unitReport {
	t.Helper()
	args := append(append([]string{}, env...), "mosqprov", "apply", "--yes", "-o", "json")
	out, err := u.c.Exec(u.ctx, "env", args...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var r unitReport
	i := strings.Index(out, "{")
	if i < 0 {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if jerr := json.Unmarshal([]byte(out[i:]), &r); jerr != nil || got != code {
		t.Fatalf("apply: exit %d, want %d, %v\n%s", got, code, jerr, out)
	}
	return r
}

// writeSpec writes the container's broker.yaml.
func (u *inUnit) writeSpec(t *testing.T, text string) {
	t.Helper()
	u.writeFile(t, layout.Spec, text, 0o600)
}

func (u *inUnit) writeFile(t *testing.T, p, text string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(u.c.Path(p)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.c.Path(p), []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// hash is mosqprov's hash of password (for users[].hash).
func (u *inUnit) hash(t *testing.T, password string) string {
	t.Helper()
	return u.run(t, "sh", "-c", "printf '%s\\n' \"$1\" | mosqprov user hash --password-stdin", "sh", password)
}

// client is a real client, on the host in the container's network, of the
// broker's listener on port: TLS with the broker's CA, except on plain.
func (u *inUnit) client(port, plain int, user, pw string) brokertest.Client {
	c := brokertest.Client{Port: port, User: user, Password: pw, NetNS: u.c.NetNS()}
	if port != plain {
		c.Extra = []string{"--cafile", u.c.Path(layout.BrokerCACert)}
	}
	return c
}

// login is one login a test tries on a listener, and whether the broker
// must take it.
type login struct {
	port     int
	user, pw string
	ok       bool
}

// checkLogins tries every login with publish and reports each one the
// broker takes or refuses against what it must.
func checkLogins(t *testing.T, stage string, logins []login, publish func(port int, user, pw string) error) {
	t.Helper()
	for _, l := range logins {
		err := publish(l.port, l.user, l.pw)
		if (err == nil) != l.ok {
			who := l.user
			if who == "" {
				who = "anonymous"
			}
			t.Errorf("%s: %s on port %d (password %q): accepted=%v, want %v (%v)", stage, who, l.port, l.pw, err == nil, l.ok, err)
		}
	}
}

func (u *inUnit) mainPID(t *testing.T) string {
	t.Helper()
	return u.run(t, "systemctl", "show", "-p", "MainPID", "--value", "mosquitto")
}

// files is the modification time, mode and size of every file mosqprov
// manages in the container, to prove a run wrote nothing.
func (u *inUnit) files(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, dir := range []string{"/etc/mosquitto", "/etc/mosqprov", "/etc/systemd/system/mosquitto.service.d"} {
		filepath.Walk(u.c.Path(dir), func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				m[p] = fmt.Sprintf("%v %v %d", fi.ModTime().UnixNano(), fi.Mode(), fi.Size())
			}
			return nil
		})
	}
	return m
}

// logMark is where the broker's logs stand now; logSince reads what they
// said after it: Debian's log file (/var/log/mosquitto/mosquitto.log, where
// the broker logs once it has read its configuration) and the unit's
// journal (where it writes what it says before that).
type logMark struct {
	size  int64
	since string
}

func (u *inUnit) logMark(t *testing.T) logMark {
	t.Helper()
	var m logMark
	if fi, err := os.Stat(u.c.Path(brokerLog)); err == nil {
		m.size = fi.Size()
	}
	m.since = "@" + u.run(t, "date", "+%s.%N")
	return m
}

const brokerLog = "/var/log/mosquitto/mosquitto.log"

func (u *inUnit) logSince(t *testing.T, m logMark) string {
	t.Helper()
	data, err := os.ReadFile(u.c.Path(brokerLog))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) < m.size {
		m.size = 0 // rotated
	}
	journal := u.run(t, "journalctl", "-u", "mosquitto", "--since", m.since, "--no-pager", "-o", "cat")
	return string(data[m.size:]) + "\n" + journal
}

// waitFor polls until ok says yes (at most 15 s).
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 15 s for %s", what)
		}
	}
}

// aFlow is one message published as pub on pubTopic that sub, subscribed
// on subTopic, should (want) or should not receive.
type aFlow struct {
	what     string
	sub      brokertest.Client
	subTopic string
	pub      brokertest.Client
	pubTopic string
	want     bool
}

// checkFlowsAtOnce runs every flow at the same time (a flow that must not
// arrive costs its whole wait, so one wait for all), each with its own
// message, and fails the test for each one that went otherwise. A
// subscriber gives no sign that its subscription is in place, and on a
// loaded machine it may take a while: each message is published again
// every second until its subscriber has it or the wait is over (a flow
// that must not arrive gets as many chances to leak).
func checkFlowsAtOnce(t *testing.T, stage string, flows []aFlow) {
	t.Helper()
	const wait = 5 * time.Second
	stamp := time.Now().UnixNano()
	message := func(i int) string { return fmt.Sprintf("m%d-%d", stamp, i) }
	subs := make([]*brokertest.Subscription, len(flows))
	for i, f := range flows {
		s, err := f.sub.Subscribe(f.subTopic, 1, wait)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	for round := 0; ; round++ {
		time.Sleep(700 * time.Millisecond)
		open := 0
		for i, f := range flows {
			select {
			case <-subs[i].Done():
				continue
			default:
			}
			open++
			if err := f.pub.Publish(f.pubTopic, message(i)); err != nil {
				t.Fatalf("%s: %s: %v", stage, f.what, err)
			}
		}
		if open == 0 || round >= 3 {
			break
		}
	}
	for i, f := range flows {
		lines, err := subs[i].Wait()
		got := false
		for _, l := range lines {
			got = got || l == f.subTopic+" "+message(i)
		}
		if err != nil && !strings.Contains(err.Error(), "exit status 27") { // 27: -W timed out
			t.Errorf("%s: %s: subscriber: %v", stage, f.what, err)
			continue
		}
		if got != f.want {
			t.Errorf("%s: %s: delivered=%v, want %v", stage, f.what, got, f.want)
		}
	}
}

// unitHub is the bridge's remote: a second broker provisioned by mosqprov
// in the same container under its own --root (/srv/hub), run by the real
// mosquitto binary as a transient unit (systemd-run), on a TLS listener
// with passwords. Its ACL lets the bridge's user pi1 use pi1/# only.
type unitHub struct {
	port    int
	ca      string // its CA certificate, inside the container
	pi1     string // the bridge's password there
	app     brokertest.Client
	rootDir string
}

const hubUnit = "mosqprov-e2e-hub"

func (u *inUnit) startHub(t *testing.T) *unitHub {
	t.Helper()
	h := &unitHub{port: 18883, rootDir: "/srv/hub", pi1: "pi1-bridge-secret"}
	// The hub's root has the container's accounts, as an image would.
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		data, err := os.ReadFile(u.c.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		u.writeFile(t, h.rootDir+f, string(data), 0o644)
	}
	os.Chmod(u.c.Path(h.rootDir), 0o755)
	u.writeFile(t, h.rootDir+layout.Spec, fmt.Sprintf(`hostname: localhost
ips: [127.0.0.1]
listeners:
  - {type: mqtts, port: %d}
users:
  - {name: pi1, password_env: HUB_PI1}
  - {name: app, password_env: HUB_APP}
acl:
  - {user: pi1, readwrite: ["pi1/#"]}
  - {user: app, readwrite: ["#"]}
package: {install: false}
service: {enable: false}
`, h.port), 0o600)
	const appPassword = "hub-app-secret"
	u.run(t, "env", "HUB_PI1="+h.pi1, "HUB_APP="+appPassword, "mosqprov", "--root", h.rootDir, "apply", "--yes")
	dropIn, err := os.ReadFile(u.c.Path(h.rootDir + layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(dropIn), " /etc/mosquitto/", " "+h.rootDir+"/etc/mosquitto/")
	u.writeFile(t, h.rootDir+"/hub.conf", conf, 0o644)
	h.start(t, u)
	h.ca = h.rootDir + layout.BrokerCACert
	h.app = brokertest.Client{Host: "localhost", Port: h.port, User: "app", Password: appPassword, Extra: []string{"--cafile", u.c.Path(h.ca)}, NetNS: u.c.NetNS()}
	return h
}

// start runs the hub's broker (a transient unit: gone once stopped).
func (h *unitHub) start(t *testing.T, u *inUnit) {
	t.Helper()
	u.run(t, "systemd-run", "--unit="+hubUnit, "--", "/usr/sbin/mosquitto", "-c", h.rootDir+"/hub.conf")
	waitFor(t, "the hub's listener", func() bool {
		conn, err := u.c.DialTimeout(fmt.Sprintf("127.0.0.1:%d", h.port), time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// testBridgeInRealSystemd (issue 13 §1): a bridge over TLS with a password,
// on the broker run by Debian's unit, to a second mosqprov broker. Messages
// flow in each configured direction and not in the others; the bridges file
// (0640 root:mosquitto) is read by the broker on `systemctl restart` (as
// root) and on reload (SIGHUP: the broker, by then the mosquitto user,
// reads its configuration again); verify reports the bridge; a second apply
// writes nothing and restarts nothing; a bridge removed from the spec is
// gone after apply.
func testBridgeInRealSystemd(t *testing.T, u *inUnit) {
	start := time.Now()
	defer func() { t.Logf("bridge under real systemd: %s", time.Since(start).Round(time.Second)) }()
	h := u.startHub(t)
	defer u.c.Exec(u.ctx, "systemctl", "stop", hubUnit)
	const blindsPassword = "blinds-secret"
	blindsHash := u.hash(t, blindsPassword)
	// The remote password comes from a root-only file (never argv).
	u.writeFile(t, "/etc/mosqprov/hub.password", h.pi1+"\n", 0o600)
	spec := func(bridges string) string {
		return fmt.Sprintf(`hostname: pi.home.arpa
ips: [127.0.0.1]
listeners:
  - {type: mqtt, port: 1883, bind: 127.0.0.1}
  - {type: mqtts, port: 8883}
users:
  - {name: blinds, hash: "%s"}
acl:
  - {user: blinds, readwrite: ["home/#"], read: ["$SYS/broker/connection/#"]}
%s`, blindsHash, bridges)
	}
	withBridge := spec(fmt.Sprintf(`bridges:
  - name: hub
    addresses: ["localhost:%d"]
    tls: {ca_file: %s}
    username: pi1
    password_file: /etc/mosqprov/hub.password
    keepalive: 30
    topics:
      - {pattern: "home/sensors/#", direction: out, qos: 1, remote_prefix: pi1/}
      - {pattern: "home/cmd/#", direction: in, qos: 1, remote_prefix: pi1/}
      - {pattern: "home/both/#", direction: both, qos: 1, remote_prefix: pi1/}
`, h.port, h.ca))
	local := brokertest.Client{Port: 1883, User: "blinds", Password: blindsPassword, NetNS: u.c.NetNS()}
	flows := []aFlow{
		{what: "out: local sensors reach the hub under pi1/", sub: h.app, subTopic: "pi1/home/sensors/t", pub: local, pubTopic: "home/sensors/t", want: true},
		{what: "out only: the hub's pi1/home/sensors do not come in", sub: local, subTopic: "home/sensors/u", pub: h.app, pubTopic: "pi1/home/sensors/u"},
		{what: "in: the hub's commands reach the Pi", sub: local, subTopic: "home/cmd/open", pub: h.app, pubTopic: "pi1/home/cmd/open", want: true},
		{what: "in only: local commands do not go out", sub: h.app, subTopic: "pi1/home/cmd/close", pub: local, pubTopic: "home/cmd/close"},
		{what: "both, outwards", sub: h.app, subTopic: "pi1/home/both/x", pub: local, pubTopic: "home/both/x", want: true},
		{what: "both, inwards", sub: local, subTopic: "home/both/y", pub: h.app, pubTopic: "pi1/home/both/y", want: true},
		{what: "outside the bridge's topics", sub: h.app, subTopic: "pi1/home/other", pub: local, pubTopic: "home/other"},
	}
	stateTopic := ""
	connected := func() bool {
		s, err := local.Subscribe(stateTopic, 1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		lines, _ := s.Wait()
		return len(lines) == 1 && lines[0] == stateTopic+" 1"
	}

	u.writeSpec(t, withBridge)
	pid := u.mainPID(t)
	mark := u.logMark(t)
	r := u.apply(t)
	if !r.did("bridges", "create") || !r.did("service mosquitto", "restart") {
		t.Fatalf("apply with a bridge: %+v", r.Changes)
	}
	if u.mainPID(t) == pid {
		t.Fatal("the broker was not restarted for the new bridge")
	}
	// Root's file, the broker's group may read it: the broker reads it as
	// root when it starts, as mosquitto on SIGHUP.
	if got := u.run(t, "stat", "-c", "%a %U:%G", bridge.File); got != "640 root:mosquitto" {
		t.Fatalf("%s is %s, want 640 root:mosquitto", bridge.File, got)
	}
	var listed struct {
		Result struct {
			Bridges []bridge.Bridge `json:"bridges"`
		} `json:"result"`
	}
	out := u.run(t, "mosqprov", "bridge", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed.Result.Bridges) != 1 {
		t.Fatalf("bridge list: %v\n%s", err, out)
	}
	stateTopic = listed.Result.Bridges[0].StateTopic()
	if strings.Contains(out, h.pi1) {
		t.Fatalf("bridge list shows the remote password:\n%s", out)
	}
	// The restart apply did was systemctl's: the bridge connected with the
	// password from the file.
	waitFor(t, "the bridge to connect after apply's restart", connected)
	checkFlowsAtOnce(t, "after apply's restart", flows)

	// systemctl restart again, through mosqprov.
	out = u.run(t, "mosqprov", "service", "restart")
	if !strings.Contains(out, "~ service mosquitto: ran (systemctl restart mosquitto; active") {
		t.Fatalf("service restart:\n%s", out)
	}
	waitFor(t, "the bridge to connect after systemctl restart", connected)

	// Reload: SIGHUP through the unit's ExecReload. The broker, now the
	// mosquitto user, reads its whole configuration again, the bridges
	// file included; it must do so without an error and keep the bridge.
	pid = u.mainPID(t)
	reloadMark := u.logMark(t)
	out = u.run(t, "mosqprov", "service", "reload")
	if !strings.Contains(out, "~ service mosquitto: ran (systemctl reload mosquitto; active") {
		t.Fatalf("service reload:\n%s", out)
	}
	if got := u.mainPID(t); got != pid {
		t.Fatalf("reload replaced the broker: pid %s -> %s", pid, got)
	}
	var reloaded string
	waitFor(t, "the broker to log its reload", func() bool {
		reloaded = u.logSince(t, reloadMark)
		return strings.Contains(reloaded, "Reloading config.")
	})
	time.Sleep(500 * time.Millisecond)
	reloaded = u.logSince(t, reloadMark)
	if len(complaints(reloaded)) > 0 {
		t.Fatalf("the broker could not read its configuration on reload:\n%s", reloaded)
	}
	waitFor(t, "the bridge after the reload", connected)
	checkFlowsAtOnce(t, "after a reload", flows[:1])

	// verify, as blinds: the bridge is connected and a message goes through it.
	out, err := u.c.Exec(u.ctx, "env", "MOSQPROV_PASSWORD="+blindsPassword, "mosqprov", "verify", "--user", "blinds")
	if err != nil || !strings.Contains(out, "ok   bridge hub connected, message through it ok") || !strings.Contains(out, "1 bridge: 1 connected, 0 failed") {
		t.Fatalf("verify --user blinds: %v\n%s", err, out)
	}
	// With the hub stopped, verify says the bridge is down and fails.
	u.run(t, "systemctl", "stop", hubUnit)
	out, err = u.c.Exec(u.ctx, "env", "MOSQPROV_PASSWORD="+blindsPassword, "mosqprov", "verify", "--user", "blinds")
	if err == nil || !strings.Contains(out, "FAIL bridge hub") || !strings.Contains(out, "1 bridge: 0 connected, 1 failed") {
		t.Fatalf("verify --user blinds with the hub stopped: %v\n%s", err, out)
	}
	h.start(t, u)
	waitFor(t, "the bridge to reconnect to the restarted hub", connected)

	// A second apply writes nothing and restarts nothing.
	pid, before := u.mainPID(t), u.files(t)
	if r := u.apply(t); r.Changed {
		t.Fatalf("second apply changed: %+v", r.Changes)
	}
	if u.mainPID(t) != pid {
		t.Fatal("second apply restarted the broker")
	}
	if after := u.files(t); !maps.Equal(before, after) {
		t.Fatalf("second apply touched files:\nbefore %v\nafter  %v", before, after)
	}
	if log := u.logSince(t, mark); len(complaints(log)) > 0 {
		t.Errorf("the broker complains with the bridge:\n%s\nwhole log:\n%s", strings.Join(complaints(log), "\n"), log)
	}

	// The bridge removed from the spec: gone after apply, with its CA file.
	u.writeSpec(t, spec(""))
	r = u.apply(t)
	if !r.did("bridges", "delete") || !r.did("service mosquitto", "restart") {
		t.Fatalf("apply without the bridge: %+v", r.Changes)
	}
	for _, f := range []string{bridge.File, bridge.Dir + "/hub-ca.crt"} {
		if _, err := os.Stat(u.c.Path(f)); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the bridge left the spec (%v)", f, err)
		}
	}
	checkFlowsAtOnce(t, "bridge removed", []aFlow{
		{what: "nothing goes out", sub: h.app, subTopic: "pi1/home/sensors/gone", pub: local, pubTopic: "home/sensors/gone"},
		{what: "nothing comes in", sub: local, subTopic: "home/cmd/gone", pub: h.app, pubTopic: "pi1/home/cmd/gone"},
	})
}
