package plan

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

const examplePath = "../../examples/broker.yaml"

// exampleEnv is the test's stand-in for the secrets the example spec names.
type exampleEnv struct {
	dir     string // holds the bot's password file
	ports   map[string]int
	blinds  string
	bot     string
	android string // the example's hash is of this password
}

// loadExample makes a test-only copy of the article's spec: loopback high
// ports, 127.0.0.1 in the certificate, the bot's password file in a temp
// folder. Everything else is the example as shipped.
func loadExample(t *testing.T, users int) (*spec.Spec, *exampleEnv) {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	env := &exampleEnv{dir: t.TempDir(), ports: map[string]int{}, blinds: "blinds-secret", bot: "bot-secret", android: "android-example-password"}
	text := string(data)
	for _, l := range []struct{ typ, from string }{{"mqtt", "1883"}, {"mqtts", "8883"}, {"wss", "9443"}} {
		p := brokertest.FreePort(t)
		env.ports[l.typ] = p
		text = strings.Replace(text, "port: "+l.from, fmt.Sprintf("port: %d", p), 1)
	}
	text = strings.Replace(text, "ips: [192.168.1.50]", "ips: [192.168.1.50, 127.0.0.1]", 1)
	botFile := filepath.Join(env.dir, "bot")
	os.WriteFile(botFile, []byte(env.bot+"\n"), 0o600)
	text = strings.Replace(text, "/run/secrets/telegram-bot-mqtt", botFile, 1)
	if !strings.Contains(text, botFile) || !strings.Contains(text, "127.0.0.1]") {
		t.Fatal("the example changed; update loadExample")
	}
	path := filepath.Join(env.dir, "broker.yaml")
	os.WriteFile(path, []byte(text), 0o644)
	s, err := spec.Load(system.NewReal(env.dir), path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < users; i++ {
		s.Users = append(s.Users, spec.User{Name: fmt.Sprintf("sensor-%02d", i), PasswordEnv: "MQTT_BLINDS_PASSWORD"})
	}
	return s, env
}

func (e *exampleEnv) options() Options {
	return Options{LookupEnv: func(k string) (string, bool) {
		if k == "MQTT_BLINDS_PASSWORD" {
			return e.blinds, true
		}
		return "", false
	}}
}

// newRoot is a target root with this machine's accounts (brokertest.Root).
func newRoot(t *testing.T) string { return brokertest.Root(t) }

func realSys(root string) *system.Real {
	return system.NewReal(root, system.WithRunner(&system.Recorder{}))
}

// The article's spec, applied under a root, is a broker the real mosquitto
// runs and the article's three clients use, each within its ACL.
func TestApplyExampleRealBroker(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	s, env := loadExample(t, 0)
	root := newRoot(t)
	ctx := context.Background()

	res, err := Converge(ctx, realSys(root), s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Need != system.NeedRestart {
		t.Fatalf("first apply: changed=%v need=%v", res.Changed, res.Need)
	}

	// The configuration names target paths; the test broker reads them under root.
	confData, err := os.ReadFile(filepath.Join(root, layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	conf := brokertest.Rooted(root, string(confData))
	brokertest.Start(t, root, conf, env.ports["mqtt"], env.ports["mqtts"], env.ports["wss"])

	cafile := filepath.Join(root, layout.BrokerCACert)
	tlsClient := func(user, pw string) brokertest.Client {
		return brokertest.Client{Port: env.ports["mqtts"], User: user, Password: pw, Extra: []string{"--cafile", cafile}}
	}
	blinds := tlsClient("blinds", env.blinds)
	bot := tlsClient("telegram-bot", env.bot)
	app := tlsClient("android-app", env.android)

	// The Android app and the bot see what the blinds controller reports.
	for _, sub := range []brokertest.Client{app, bot} {
		ok, err := brokertest.Roundtrip(sub, blinds, "home/blinds/living/state", "open")
		if err != nil || !ok {
			t.Fatalf("%s did not receive the blinds' state: delivered=%v err=%v", sub.User, ok, err)
		}
	}
	// The bot sends a command the blinds controller gets.
	if ok, err := brokertest.Roundtrip(blinds, bot, "home/blinds/living/set", "close"); err != nil || !ok {
		t.Fatalf("blinds did not receive the bot's command: %v %v", ok, err)
	}
	// The ACL holds: the app may not publish the blinds' state.
	if ok, err := brokertest.Roundtrip(bot, app, "home/blinds/living/state", "forged"); err != nil || ok {
		t.Fatalf("android-app published outside its ACL: delivered=%v err=%v", ok, err)
	}
	// Plain MQTT is on loopback only, and needs a password too.
	if err := (brokertest.Client{Port: env.ports["mqtt"], User: "blinds", Password: env.blinds}).Publish("home/blinds/x", "1"); err != nil {
		t.Fatalf("plain loopback listener: %v", err)
	}
	for _, c := range []brokertest.Client{
		{Port: env.ports["mqtt"]},
		{Port: env.ports["mqtt"], User: "blinds", Password: "wrong"},
		tlsClient("android-app", "wrong"),
	} {
		if err := c.Publish("home/x", "1"); err == nil {
			t.Errorf("%q with password %q was let in", c.User, c.Password)
		}
	}
	// The Android app's listener: MQTT over secure WebSockets, verified
	// against the CA with the name the certificate carries.
	wssRoundtrip(t, env.ports["wss"], cafile, "android-app", env.android)

	// A second apply changes nothing and writes nothing.
	before := mtimes(t, root)
	sys2 := realSys(root)
	res2, err := Converge(ctx, sys2, s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || len(sys2.Changes()) != 0 || res2.Need != system.NeedNothing {
		t.Fatalf("second apply: changed=%v files=%v need=%v", res2.Changed, sys2.Changes(), res2.Need)
	}
	if after := mtimes(t, root); !maps.Equal(before, after) {
		t.Fatalf("second apply touched files:\nbefore %v\nafter  %v", before, after)
	}
}

func wssRoundtrip(t *testing.T, port int, cafile, user, pw string) {
	t.Helper()
	pem, err := os.ReadFile(cafile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	got := make(chan string, 1)
	opts := mqtt.NewClientOptions().
		AddBroker(fmt.Sprintf("wss://127.0.0.1:%d/mqtt", port)).
		SetUsername(user).SetPassword(pw).SetClientID("android-test").
		SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}).
		SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("wss connect as %s: %v", user, tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("home/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("wss subscribe: %v", tok.Error())
	}
	if tok := c.Publish("home/blinds/kitchen/set", 1, false, "open"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("wss publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "open" {
			t.Fatalf("wss got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wss: own command not received back on home/#")
	}
}

func mtimes(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.Walk(filepath.Join(root, "etc"), func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			m[p] = fmt.Sprintf("%v %v %d", fi.ModTime().UnixNano(), fi.Mode(), fi.Size())
		}
		return nil
	})
	return m
}

// Plan (a dry run) lists exactly what apply then does, writes nothing,
// and plan after apply is empty.
func TestPlanIsApply(t *testing.T) {
	s, env := loadExample(t, 0)
	root := newRoot(t)
	ctx := context.Background()
	dry := system.NewDryRun(realSys(root))
	planned, err := Converge(ctx, dry, s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, layout.PasswordFile)); !os.IsNotExist(err) {
		t.Fatalf("plan wrote the password file: %v", err)
	}
	real := realSys(root)
	applied, err := Converge(ctx, real, s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(applied), describe(planned); got != want {
		t.Fatalf("apply did\n%s\nplan said\n%s", got, want)
	}
	if len(real.Changes()) != len(dry.Changes()) {
		t.Fatalf("apply wrote %d files, plan said %d", len(real.Changes()), len(dry.Changes()))
	}
	again, err := Converge(ctx, system.NewDryRun(realSys(root)), s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed {
		t.Fatalf("plan after apply has changes:\n%s", describe(again))
	}
}

func describe(r *Result) string {
	var b strings.Builder
	for _, st := range r.Steps {
		for _, c := range st.Changes {
			fmt.Fprintf(&b, "%s %s %s %s\n", st.Name, c.What, c.Path, c.Action)
		}
	}
	fmt.Fprintf(&b, "need %s, %s\n", r.Need, r.Summary)
	return b.String()
}

// Users the spec doesn't list are left alone and listed, unless prune_users.
func TestUnmanagedUsers(t *testing.T) {
	s, env := loadExample(t, 0)
	root := newRoot(t)
	ctx := context.Background()
	os.MkdirAll(filepath.Join(root, "etc/mosquitto"), 0o755)
	line := "old-sensor:$7$101$74G1pCqSt4EPbk0k$l5MijUNV9xjqd00TZnXHrKfdQLEzw0r1/XtNYNjAtCSyFhoAf7c0oIpZunEjhWIbesnOMGnfc7atQzv+bWZ7qA==\n"
	os.WriteFile(filepath.Join(root, layout.PasswordFile), []byte(line), 0o600)
	res, err := Converge(ctx, realSys(root), s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(root, layout.PasswordFile))
	if len(res.Unmanaged) != 1 || res.Unmanaged[0] != "old-sensor" || !strings.Contains(string(data), line) {
		t.Fatalf("unmanaged %v, file:\n%s", res.Unmanaged, data)
	}
	s.PruneUsers = true
	dry := system.NewDryRun(realSys(root))
	res, err = Converge(ctx, dry, s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	diffs := Diffs(dry.Changes())
	var pw FileDiff
	for _, d := range diffs {
		if d.Path == layout.PasswordFile {
			pw = d
		}
	}
	if len(res.Unmanaged) != 0 || !strings.Contains(pw.Diff, "-old-sensor:$7$(hash masked)") {
		t.Fatalf("prune: unmanaged %v, diff:\n%s", res.Unmanaged, pw.Diff)
	}
	if _, err := Converge(ctx, realSys(root), s, env.options()); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(root, layout.PasswordFile))
	if strings.Contains(string(data), "old-sensor") {
		t.Fatal("prune_users kept old-sensor")
	}
}

var hashRE = regexp.MustCompile(`\$7\$[0-9]+\$[A-Za-z0-9+/=]{8,}`)

// No diff of any step shows a password hash or a private key, and a changed
// password shows as a new (masked) hash.
func TestDiffsHideSecrets(t *testing.T) {
	s, env := loadExample(t, 0)
	root := newRoot(t)
	ctx := context.Background()
	dry := system.NewDryRun(realSys(root))
	if _, err := Converge(ctx, dry, s, env.options()); err != nil {
		t.Fatal(err)
	}
	check := func(diffs []FileDiff) {
		t.Helper()
		for _, d := range diffs {
			if hashRE.MatchString(d.Diff) || strings.Contains(d.Diff, "PRIVATE KEY") || strings.Contains(d.Diff, env.blinds) {
				t.Errorf("%s: diff shows a secret:\n%s", d.Path, d.Diff)
			}
		}
	}
	check(Diffs(dry.Changes()))
	if _, err := Converge(ctx, realSys(root), s, env.options()); err != nil {
		t.Fatal(err)
	}
	env.blinds = "a-new-password"
	dry = system.NewDryRun(realSys(root))
	res, err := Converge(ctx, dry, s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	diffs := Diffs(dry.Changes())
	check(diffs)
	if res.Need != system.NeedReload || len(diffs) != 2 || diffs[0].Path != layout.PasswordFile ||
		!strings.Contains(diffs[0].Diff, "-blinds:$7$(hash masked)\n+blinds:$7$(new hash masked)") {
		t.Fatalf("need %v, diffs %+v", res.Need, diffs)
	}
}

// Bad input stops the run before the first write, with the place in the spec.
func TestBadInputWritesNothing(t *testing.T) {
	s, env := loadExample(t, 0)
	root := newRoot(t)
	o := env.options()
	o.LookupEnv = func(string) (string, bool) { return "", false }
	_, err := Converge(context.Background(), realSys(root), s, o)
	if !errs.IsInput(err) || !strings.Contains(err.Error(), "broker.yaml:23:34: users[0].password_env: the environment variable MQTT_BLINDS_PASSWORD") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/mosquitto")); !os.IsNotExist(err) {
		t.Fatal("something was written before the input was checked")
	}
	os.WriteFile(filepath.Join(env.dir, "bot"), []byte("\n"), 0o600)
	_, err = Converge(context.Background(), realSys(root), s, env.options())
	if !errs.IsInput(err) || !strings.Contains(err.Error(), "users[1].password_file") {
		t.Fatalf("got %v", err)
	}
}

// The service step enables the unit and starts a stopped broker (which
// then reads every new file, so nothing is left to settle).
func TestServiceStep(t *testing.T) {
	s, _ := loadExample(t, 0)
	rec := (&system.Recorder{}).
		On("systemctl is-enabled", system.Output{Stdout: []byte("disabled\n")}, &system.ExitError{Code: 1}).
		On("systemctl is-active", system.Output{Stdout: []byte("inactive\n")}, &system.ExitError{Code: 3})
	sys := system.NewDryRun(system.NewReal("/", system.WithRunner(rec)))
	svc := systemd.New(sys)
	svc.Booted = func() bool { return true }
	r := &Result{Need: system.NeedRestart}
	if err := serviceStep(context.Background(), sys, s, &desired{}, Options{Service: svc}, r); err != nil {
		t.Fatal(err)
	}
	cmds := sys.Commands()
	if len(cmds) != 2 || cmds[0].String() != "systemctl enable mosquitto" || cmds[1].String() != "systemctl start mosquitto" {
		t.Fatalf("commands %v", cmds)
	}
	if r.Need != system.NeedNothing || !r.Changed {
		t.Fatalf("need %v changed %v", r.Need, r.Changed)
	}
	// Running and enabled: nothing to do here; the caller settles r.Need.
	rec.On("systemctl is-enabled", system.Output{Stdout: []byte("enabled\n")}, nil).
		On("systemctl is-active", system.Output{Stdout: []byte("active\n")}, nil)
	sys = system.NewDryRun(system.NewReal("/", system.WithRunner(rec)))
	svc.Sys = sys
	r = &Result{Need: system.NeedReload}
	if err := serviceStep(context.Background(), sys, s, &desired{}, Options{Service: svc}, r); err != nil {
		t.Fatal(err)
	}
	if len(sys.Commands()) != 0 || r.Need != system.NeedReload || r.Changed {
		t.Fatalf("commands %v need %v", sys.Commands(), r.Need)
	}
}

// The package step asks dpkg, installs what is missing through apt (recorded
// here), and tells the service step the unit comes with the install.
func TestPackageStep(t *testing.T) {
	s, _ := loadExample(t, 0)
	installed := "mosquitto\tinstalled\t2.0.11-1.2+deb12u1\nmosquitto-clients\tinstalled\t2.0.11-1.2+deb12u1\n"
	rec := (&system.Recorder{}).On("dpkg-query", system.Output{Stdout: []byte(installed)}, nil)
	sys := system.NewDryRun(system.NewReal("/", system.WithRunner(rec)))
	d, r := &desired{}, &Result{}
	if err := packageStep(context.Background(), sys, s, d, Options{}, r); err != nil {
		t.Fatal(err)
	}
	if r.Changed || d.installing || len(sys.Commands()) != 0 || len(r.Steps) != 1 || len(r.Steps[0].Changes) != 2 {
		t.Fatalf("installed: %s commands %v", describe(r), sys.Commands())
	}

	rec = (&system.Recorder{}).
		On("dpkg-query", system.Output{}, &system.ExitError{Code: 1, Stderr: "dpkg-query: no packages found matching mosquitto"}).
		On("apt-cache policy", system.Output{Stdout: []byte("mosquitto:\n  Installed: (none)\n  Candidate: 2.0.11-1.2+deb12u1\nmosquitto-clients:\n  Installed: (none)\n  Candidate: 2.0.11-1.2+deb12u1\n")}, nil)
	sys = system.NewDryRun(system.NewReal("/", system.WithRunner(rec)))
	in := apt.NewInstaller(sys)
	in.LockHolder = func() (apt.Holder, bool) { return apt.Holder{}, false }
	d, r = &desired{}, &Result{}
	if err := packageStep(context.Background(), sys, s, d, Options{Installer: in}, r); err != nil {
		t.Fatal(err)
	}
	var install bool
	for _, c := range sys.Commands() {
		if strings.HasPrefix(c.String(), "apt-get") && strings.Contains(c.String(), "install") {
			install = true
		}
	}
	if !r.Changed || !d.installing || !install {
		t.Fatalf("missing: %s commands %v", describe(r), sys.Commands())
	}
	svc := systemd.New(sys)
	svc.Booted = func() bool { return true }
	if err := serviceStep(context.Background(), sys, s, d, Options{Service: svc}, r); err != nil {
		t.Fatalf("service step after a planned install: %v", err)
	}
}

// Files that are as the spec wants but not as the last complete apply
// recorded (an apply killed between its writes and its reload) still get
// their reload or restart, once.
func TestUnsettledFilesGetTheirReload(t *testing.T) {
	s, env := loadExample(t, 0)
	root := newRoot(t)
	ctx := context.Background()
	if _, err := Converge(ctx, realSys(root), s, env.options()); err != nil {
		t.Fatal(err)
	}
	stPath := filepath.Join(root, "etc/mosqprov/state.json")
	good, _ := os.ReadFile(stPath)
	for _, tc := range []struct {
		path string
		need system.Need
	}{{layout.PasswordFile, system.NeedReload}, {layout.ServerCert, system.NeedReload}, {layout.DropIn, system.NeedRestart}, {layout.CACert, system.NeedNothing}} {
		var st map[string]any
		json.Unmarshal(good, &st)
		st["files"].(map[string]any)[tc.path] = strings.Repeat("0", 64)
		data, _ := json.Marshal(st)
		os.WriteFile(stPath, data, 0o644)
		res, err := Converge(ctx, realSys(root), s, env.options())
		if err != nil {
			t.Fatal(err)
		}
		if res.Need != tc.need || !res.Changed {
			t.Errorf("%s: need %v, changed %v; want %v", tc.path, res.Need, res.Changed, tc.need)
		}
		if res, _ := Converge(ctx, realSys(root), s, env.options()); res.Changed || res.Need != system.NeedNothing {
			t.Errorf("%s: the run after is not converged: %s", tc.path, describe(res))
		}
	}
	// A file this run writes is not "unsettled": its own change calls for
	// the reload, and the plan doesn't claim the broker missed something.
	env.blinds = "a-new-password"
	res, err := Converge(ctx, system.NewDryRun(realSys(root)), s, env.options())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range res.Steps {
		if st.Name == StepState && (len(st.Changes) != 1 || st.Changes[0].Detail != "" || st.Need != system.NeedNothing) {
			t.Errorf("password change: state step %+v", st)
		}
	}
}

// password_file is read on the machine running mosqprov, never under
// --root (README, broker.yaml reference): a secret that exists only inside
// the root is not found, one on this machine is.
func TestPasswordFileIsReadOnThisMachine(t *testing.T) {
	root := newRoot(t)
	inRoot := "/run/mosqprov-test-" + filepath.Base(t.TempDir()) + "/bot"
	os.MkdirAll(filepath.Join(root, filepath.Dir(inRoot)), 0o755)
	os.WriteFile(filepath.Join(root, inRoot), []byte("bot-secret\n"), 0o600)
	onHost := filepath.Join(t.TempDir(), "bot")
	os.WriteFile(onHost, []byte("bot-secret\n"), 0o600)

	for _, tc := range []struct {
		file string
		ok   bool
	}{{inRoot, false}, {onHost, true}} {
		s := spec.Default("pi.home.arpa")
		s.Users = []spec.User{{Name: "bot", PasswordFile: tc.file}}
		_, err := Converge(context.Background(), system.NewDryRun(realSys(root)), s, Options{})
		if tc.ok != (err == nil) {
			t.Errorf("password_file %s: %v", tc.file, err)
		}
		if !tc.ok && (!errs.IsInput(err) || !strings.Contains(err.Error(), "can't read "+tc.file)) {
			t.Errorf("password_file %s: want an input error naming it, got %v", tc.file, err)
		}
	}
}

// A plan can't know the fingerprint of a certificate apply will issue (its
// key doesn't exist yet) and says so; one that exists (the CA, copied for
// the broker) is shown as it is.
func TestPlannedFingerprints(t *testing.T) {
	s, env := loadExample(t, 0)
	root := newRoot(t)
	ctx := context.Background()
	fingerprints := func() map[string]string {
		t.Helper()
		dry := system.NewDryRun(realSys(root))
		if _, err := Converge(ctx, dry, s, env.options()); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, d := range PlannedDiffs(dry.Changes()) {
			if _, fp, ok := strings.Cut(d.Diff, "+sha256: "); ok {
				m[d.Path], _, _ = strings.Cut(fp, "\n")
			}
		}
		return m
	}
	fresh := fingerprints()
	for _, p := range []string{layout.CACert, layout.BrokerCACert, layout.ServerCert} {
		if fresh[p] != "(known after apply)" {
			t.Errorf("fresh plan, %s: sha256 %q", p, fresh[p])
		}
	}
	if _, err := Converge(ctx, realSys(root), s, env.options()); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, layout.BrokerCACert))
	data, err := os.ReadFile(filepath.Join(root, layout.CACert))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := fingerprints(); len(got) != 1 || got[layout.BrokerCACert] != pki.Fingerprint(ca) {
		t.Fatalf("copy of the existing CA: %v, want %s", got, pki.Fingerprint(ca))
	}
}

// A plan that installs the package doesn't count the folders the package's
// install makes (/etc/mosquitto/certs): apply finds them there and creates
// nothing, and the two summaries must agree. (The whole path, on a real
// Debian whose apt installs the package: TestApplyInRealSystemd.)
func TestPlannedInstallLeavesPackageFolders(t *testing.T) {
	r := &Result{}
	r.add(StepPackage, system.Result{Changes: []system.Change{system.NewChange("package mosquitto", "", system.Create, "")}})
	r.add(StepCA, system.Result{Changes: []system.Change{system.NewChange("CA folder", "/etc/mosqprov/ca", system.Create, "")}})
	r.add(StepServer, system.Result{Changes: []system.Change{
		system.NewChange("broker certificate folder", layout.BrokerCertDir, system.Create, ""),
		system.NewChange("server key", layout.ServerKey, system.Create, ""),
	}, Need: system.NeedRestart})
	r.packageFolders()
	if c := r.Steps[2].Changes[0]; c.Changed || c.Detail != "made by the package's install" {
		t.Errorf("the plan creates the package's folder: %+v", c)
	}
	if want := (Summary{Create: 3}); r.Summary != want || !r.Changed {
		t.Errorf("summary %s, want %s", r.Summary, want)
	}
}

// A CA made under the old default name ("mosqprov CA") is kept when the
// spec leaves ca_name to the new default ("mosqprov CA HOSTNAME"): a changed
// default never reissues a CA every device trusts.
func TestDefaultCANameKeepsAnExistingCA(t *testing.T) {
	s, env := loadExample(t, 0)
	s.TLS.CAName = ""
	s.SetDefaults()
	if s.TLS.CAName != "mosqprov CA "+s.Hostname {
		t.Fatalf("default CA name %q", s.TLS.CAName)
	}
	root := newRoot(t)
	if _, err := certs.EnsureCA(realSys(root), certs.CAOptions{Paths: certs.DefaultPaths(), CommonName: "mosqprov CA", KeyType: pki.RSA2048}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(root, layout.CACert))
	if _, err := Converge(context.Background(), realSys(root), s, env.options()); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(root, layout.CACert))
	if string(after) != string(before) {
		t.Fatal("apply reissued the CA because the default name changed")
	}
}

// Progress hears of every step as it starts and ends, in order, so a
// terminal can say which one is busy.
func TestConvergeReportsProgress(t *testing.T) {
	s, env := loadExample(t, 0)
	o := env.options()
	var heard []string
	o.Progress = func(step string) func() {
		heard = append(heard, step)
		return func() { heard = append(heard, "/"+step) }
	}
	if _, err := Converge(context.Background(), system.NewDryRun(realSys(newRoot(t))), s, o); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, st := range steps {
		want = append(want, st.name, "/"+st.name)
	}
	if strings.Join(heard, " ") != strings.Join(want, " ") {
		t.Errorf("heard %q, want %q", heard, want)
	}
}

// A plan that installs the package names each file it can't yet give to
// the broker's account and says what the install will do, instead of
// warning that the user does not exist; a plan that installs nothing keeps
// the warning. Both go through Converge: the package step is the real
// apt.Installer, on the running system ("/", where only a plan may install
// under test) with dpkg and apt answered by a Recorder, and the files go
// under a root whose accounts have no mosquitto user.
func TestPlanThatInstallsSaysWhoWillOwnTheFiles(t *testing.T) {
	root := t.TempDir()
	for p, data := range map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n", "var/lib/dpkg/status": ""} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(data), 0o644)
	}
	const version = "2.0.11-1.2+deb12u2"
	plan := func(installed bool) []string {
		rec := &system.Recorder{}
		if installed {
			rec.On("dpkg-query", system.Output{Stdout: []byte("mosquitto\tinstalled\t" + version + "\nmosquitto-clients\tinstalled\t" + version + "\n")}, nil)
		} else {
			rec.On("dpkg-query", system.Output{}, &system.ExitError{Cmd: "dpkg-query", Code: 1, Stderr: "dpkg-query: no packages found matching mosquitto"})
			rec.On("apt-cache policy", system.Output{Stdout: []byte("mosquitto:\n  Installed: (none)\n  Candidate: " + version + "\nmosquitto-clients:\n  Installed: (none)\n  Candidate: " + version + "\n")}, nil)
		}
		s, env := loadExample(t, 0)
		o := env.options()
		o.Installer = apt.NewInstaller(system.NewDryRun(system.NewReal("/", system.WithRunner(rec))))
		o.Installer.LockHolder = func() (apt.Holder, bool) { return apt.Holder{}, false }
		res, err := Converge(context.Background(), system.NewDryRun(realSys(root)), s, o)
		if err != nil {
			t.Fatal(err)
		}
		return res.Warnings
	}
	owned := func(path string) string {
		return path + ": will be owned by mosquitto: the mosquitto package this plan installs first creates the user"
	}
	warnings := plan(false)
	for _, p := range []string{layout.PasswordFile, layout.ServerKey} {
		if !slices.Contains(warnings, owned(p)) {
			t.Errorf("a plan that installs does not say who will own %s: %q", p, warnings)
		}
	}
	for _, w := range warnings {
		if strings.Contains(w, layout.NoBrokerUser) {
			t.Errorf("a plan that installs still says the user does not exist: %q", w)
		}
	}
	warnings = plan(true)
	if !slices.Contains(warnings, layout.PasswordFile+": "+layout.NoBrokerUser+"; the file is owned by "+system.NewReal(root).CurrentAccount().Name+" and the broker may not be able to read it") {
		t.Errorf("a plan that installs nothing must warn that the user does not exist: %q", warnings)
	}
}
