package plan

import (
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/internal/nspawn"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// testMosquitto21InRealSystemd: mosquitto 2.1 under a real systemd, in
// TestApplyInRealSystemd's trixie container once its 2.0.21 checks are
// done (a boot of its own would cost more than this). sid's systemd does
// not boot on this host; Debian 14 "forky" ships the same 2.1.2, and its
// packages install on trixie (with forky's libc6, which its libdlt3 needs),
// carried in the tree's second local repository (nspawn.Recipe.Next).
//
// First the upgrade a Pi gets from Debian 13 to 14: mosqprov's files for
// 2.0.21, `apt-get install -t forky mosquitto mosquitto-clients` over them,
// then apply rewrites authentication per listener in 2.1's form with one
// restart, and a second apply changes nothing. Then the machine is made
// bare again (mosquitto, mosquitto-clients and libmosquitto1 purged, every
// file mosqprov or the broker wrote removed; forky's other libraries stay)
// and apt's default release set to forky, as `apt-get install -t forky`
// does; then mosqprov's own paths: the first
// apply installs 2.1.2, writes everything in 2.1's form, enables and starts
// it under 2.1's unit (which runs the broker as the mosquitto user from the
// start: User=mosquitto, RuntimeDirectory=, LogsDirectory=, no
// ExecStartPre, no pid file, WatchdogSec=); real clients (the container's
// own 2.1 mosquitto_pub and mosquitto_sub, and the host's in its network)
// log in; a second apply writes nothing and restarts nothing; a new
// password is exactly one reload, the same broker process, and the broker
// takes it: the new password logs in, the old one no longer does.
func testMosquitto21InRealSystemd(t *testing.T, u *inUnit) {
	start := time.Now()
	defer func() { t.Logf("mosquitto 2.1 under real systemd: %s", time.Since(start).Round(time.Second)) }()
	want, err := u.c.RepoVersionIn(nspawn.NextRepo, "mosquitto")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, "2.1.") {
		t.Fatalf("the tree's %s has mosquitto %s, not 2.1", nspawn.Forky, want)
	}

	const plain, tls, sensorPort = 1883, 8883, 8884
	blinds, blindsNew, sensor := "blinds-on-2.1", "blinds-new-on-2.1", "sensor-on-2.1"
	spec := func(blindsHash, sensorHash string) string {
		return fmt.Sprintf(`hostname: pi.home.arpa
ips: [127.0.0.1]
listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1, users: [blinds]}
  - {type: mqtts, port: %d, users: [blinds]}
  - {type: mqtts, port: %d, users: [sensor]}
users:
  - {name: blinds, hash: "%s"}
  - {name: sensor, hash: "%s"}
acl:
  - {pattern: true, readwrite: ["%%u/#"]}
`, plain, tls, sensorPort, blindsHash, sensorHash)
	}
	blindsHash, sensorHash := u.hash(t, blinds), u.hash(t, sensor)
	ca := []string{"--cafile", layout.BrokerCACert}
	// pub21 runs the container's own mosquitto_pub (2.1) and says whether
	// the broker took the message.
	pub21 := func(port int, user, pw string) error {
		args := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-u", user, "-P", pw, "-t", user + "/x", "-m", "1", "-q", "1"}
		if port != plain {
			args = append(args, ca...)
		}
		out, err := u.c.Exec(u.ctx, "mosquitto_pub", args...)
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
		}
		return nil
	}
	// First the upgrade a Pi gets moving from Debian 13 to 14: mosqprov's
	// files for 2.0.21 (authentication per listener in 2.0's form), then
	// apt installs 2.1.2 over them (its postinst restarts the broker, on
	// those files), then apply writes 2.1's form and restarts it once; a
	// second apply changes nothing.
	u.writeSpec(t, spec(blindsHash, sensorHash))
	u.apply(t)
	if data, _ := os.ReadFile(u.c.Path(layout.DropIn)); !strings.Contains(string(data), "per_listener_settings true") {
		t.Fatalf("on 2.0.21 the drop-in is not in 2.0's form:\n%s", data)
	}
	u.run(t, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "-t", nspawn.Forky, "mosquitto", "mosquitto-clients")
	if got := u.run(t, "dpkg-query", "-W", "-f", "${Version}", "mosquitto"); got != want {
		t.Fatalf("the upgrade installed mosquitto %s, want %s", got, want)
	}
	waitFor(t, "2.1.2 up on 2.0's files after the upgrade", func() bool {
		return pub21(sensorPort, "sensor", sensor) == nil
	})
	r := u.apply(t)
	if !r.did("service mosquitto", "restart") {
		t.Fatalf("apply after the upgrade to 2.1: %+v", r.Changes)
	}
	if data, _ := os.ReadFile(u.c.Path(layout.DropIn)); !strings.Contains(string(data), "plugin ") || strings.Contains(string(data), "per_listener_settings") {
		t.Fatalf("after the upgrade apply left the drop-in in 2.0's form:\n%s", data)
	}
	for _, l := range []struct {
		port     int
		user, pw string
	}{{plain, "blinds", blinds}, {tls, "blinds", blinds}, {sensorPort, "sensor", sensor}} {
		if err := pub21(l.port, l.user, l.pw); err != nil {
			t.Errorf("after the upgrade and apply: %s on %d: %v", l.user, l.port, err)
		}
	}
	if r := u.apply(t); r.Changed {
		t.Fatalf("second apply after the upgrade changed: %+v", r.Changes)
	}

	// Bare again: no mosquitto, none of the files mosqprov or the broker wrote.
	u.run(t, "systemctl", "stop", "mosquitto")
	u.run(t, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "-q", "mosquitto", "mosquitto-clients", "libmosquitto1")
	u.run(t, "rm", "-rf", "/etc/mosquitto", "/etc/mosqprov", "/var/lib/mosquitto", "/var/log/mosquitto", "/run/mosquitto", "/etc/systemd/system/mosquitto.service.d")
	u.run(t, "systemctl", "daemon-reload")
	u.writeFile(t, "/etc/apt/apt.conf.d/99mosqprov-e2e-"+nspawn.Forky, `APT::Default-Release "`+nspawn.Forky+`";`+"\n", 0o644)

	u.writeSpec(t, spec(blindsHash, sensorHash))
	r = u.apply(t)
	if !r.did("package mosquitto", "create") || !r.did("service mosquitto", "restart") {
		t.Fatalf("first apply on a bare machine: %+v", r.Changes)
	}
	if got := u.run(t, "dpkg-query", "-W", "-f", "${Version}", "mosquitto"); got != want {
		t.Fatalf("apply installed mosquitto %s, want %s's %s", got, nspawn.Forky, want)
	}
	last := r.Changes[len(r.Changes)-1]
	if wantDetail := fmt.Sprintf("active, accepting on 127.0.0.1:%d *:%d *:%d (* is every interface)", plain, tls, sensorPort); last.Action != "restart" || last.Detail != wantDetail {
		t.Errorf("the restart says %+v, want %q", last, wantDetail)
	}
	for _, q := range []string{"is-active", "is-enabled"} {
		u.run(t, "systemctl", q, "mosquitto")
	}
	// 2.1's own unit: the broker is the mosquitto user from the start, in
	// the folders systemd makes for it.
	if got := u.run(t, "systemctl", "show", "-p", "User", "--value", "mosquitto"); got != layout.BrokerUser {
		t.Fatalf("the unit's User= is %q: this is not 2.1's unit", got)
	}
	pid := u.mainPID(t)
	if got := u.run(t, "ps", "-o", "user=", "-p", pid); got != layout.BrokerUser {
		t.Errorf("the broker (pid %s) runs as %q, want %s", pid, got, layout.BrokerUser)
	}
	// 2.1's form of authentication per listener: its password-file plugin.
	data, err := os.ReadFile(u.c.Path(layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	if dropIn := string(data); !strings.Contains(dropIn, "plugin ") || strings.Contains(dropIn, "per_listener_settings") {
		t.Errorf("the drop-in is not in 2.1's form:\n%s", dropIn)
	}
	if got := u.run(t, "stat", "-c", "%a %U:%G", conf.ListenerPasswordFile(layout.PasswordFile, sensorPort)); got != "600 mosquitto:mosquitto" {
		t.Errorf("the limited listener's password file is %s, want 600 mosquitto:mosquitto", got)
	}

	// doctor finds nothing to fix in 2.1 under its own unit, and verify
	// passes every listener.
	if out := u.run(t, "mosqprov", "doctor"); !strings.Contains(out, "No problems found.") {
		t.Errorf("doctor on 2.1:\n%s", out)
	}
	if out := u.run(t, "mosqprov", "verify"); !strings.Contains(out, "3 listeners checked, all passed") {
		t.Errorf("verify on 2.1:\n%s", out)
	}

	// roundtrip21 subscribes with the container's mosquitto_sub and
	// publishes with its mosquitto_pub, both 2.1, over TLS.
	roundtrip21 := func(user, pw string) error {
		sub := fmt.Sprintf(`mosquitto_sub -h 127.0.0.1 -p %d --cafile %s -u %s -P "$1" -t %s/rt -C 1 -W 10 > /tmp/rt.out 2>&1 & sleep 1; mosquitto_pub -h 127.0.0.1 -p %d --cafile %s -u %s -P "$1" -t %s/rt -m roundtrip -q 1 && wait $! && cat /tmp/rt.out`,
			tls, layout.BrokerCACert, user, user, tls, layout.BrokerCACert, user, user)
		out, err := u.c.Exec(u.ctx, "sh", "-c", sub, "sh", pw)
		if err != nil || strings.TrimSpace(out) != "roundtrip" {
			return fmt.Errorf("%v: %q", err, out)
		}
		return nil
	}
	host := func(port int, user, pw string) brokertest.Client { return u.client(port, plain, user, pw) }
	if err := roundtrip21("blinds", blinds); err != nil {
		t.Fatalf("2.1's mosquitto_sub and mosquitto_pub over TLS after the first apply: %v", err)
	}
	check := func(stage string, logins []login) {
		t.Helper()
		checkLogins(t, stage, logins, pub21)
	}
	check("after the first apply", []login{
		{plain, "blinds", blinds, true},
		{tls, "blinds", blinds, true},
		{tls, "blinds", "wrong", false},
		{sensorPort, "sensor", sensor, true},
		{sensorPort, "blinds", blinds, false},
		{tls, "sensor", sensor, false},
	})
	if ok, err := brokertest.Roundtrip(host(tls, "blinds", blinds), host(plain, "blinds", blinds), "blinds/host", "hello"); err != nil || !ok {
		t.Errorf("the host's clients in the container's network: delivered=%v, %v", ok, err)
	}

	// Converged: nothing written, nothing restarted or reloaded.
	before := u.files(t)
	mark := u.logMark(t)
	if r := u.apply(t); r.Changed {
		t.Fatalf("second apply on 2.1 changed: %+v", r.Changes)
	}
	if got := u.mainPID(t); got != pid {
		t.Fatalf("second apply replaced the broker: pid %s -> %s", pid, got)
	}
	if after := u.files(t); !maps.Equal(before, after) {
		t.Fatalf("second apply touched files:\nbefore %v\nafter  %v", before, after)
	}
	if log := u.logSince(t, mark); strings.Contains(log, "Reloading config.") {
		t.Fatalf("second apply reloaded the broker:\n%s", log)
	}

	// A new password for blinds: exactly one reload, the same process.
	u.writeSpec(t, spec(u.hash(t, blindsNew), sensorHash))
	mark = u.logMark(t)
	r = u.apply(t)
	var service []string
	for _, ch := range r.Changes {
		if strings.HasPrefix(ch.What, "service mosquitto") && ch.Action != "noop" {
			service = append(service, ch.Action+" "+ch.Detail)
		}
	}
	if len(service) != 1 || !r.did("service mosquitto", "reload") {
		t.Fatalf("password change on 2.1: service changes %q, want one reload\n%+v", service, r.Changes)
	}
	if got := u.mainPID(t); got != pid {
		t.Fatalf("the password change replaced the broker: pid %s -> %s", pid, got)
	}
	waitFor(t, "the new password after the reload", func() bool { return pub21(tls, "blinds", blindsNew) == nil })
	if err := roundtrip21("blinds", blindsNew); err != nil {
		t.Errorf("2.1's clients with the new password: %v", err)
	}
	check("after the reload", []login{
		{tls, "blinds", blinds, false},
		{plain, "blinds", blinds, false},
		{plain, "blinds", blindsNew, true},
		{sensorPort, "sensor", sensor, true},
	})
	log := u.logSince(t, mark)
	if n := strings.Count(log, "Reloading config."); n != 1 {
		t.Errorf("the broker reloaded %d times on the password change, want 1:\n%s", n, log)
	}
	// What the broker said: its log file (2.1's, since the purge removed
	// 2.0's) and the journal of the run mosqprov started (the unit's
	// invocation), where it writes what comes before its log file.
	// (While apt installs 2.1.2, the package's postinst starts the unit
	// before dpkg's ldconfig trigger has run, and forky's
	// libpicohttpparser1 ships only libpicohttpparser.so.1.2, not the .so.1
	// link ldconfig makes: the first starts fail to load it, and
	// Restart=on-failure brings the broker up once the trigger has run.
	// The package's doing, logged below, not anything mosqprov wrote.)
	invocation := u.run(t, "systemctl", "show", "-p", "InvocationID", "--value", "mosquitto")
	fileLog, err := os.ReadFile(u.c.Path(brokerLog))
	if err != nil {
		t.Fatal(err)
	}
	whole := string(fileLog) + "\n" + u.run(t, "journalctl", "_SYSTEMD_INVOCATION_ID="+invocation, "--no-pager", "-o", "cat")
	if !strings.Contains(whole, "mosquitto version "+strings.SplitN(want, "-", 2)[0]) {
		t.Errorf("the broker's log is not %s's:\n%s", want, whole)
	}
	var bad []string
	for _, line := range complaints(whole) {
		// The refused logins are the test, not a problem with the files.
		if !strings.Contains(line, "not authorised") && !strings.Contains(line, "bad user name or password") {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("2.1 complains about what mosqprov wrote:\n%s\nwhole log:\n%s", strings.Join(bad, "\n"), whole)
	}
	out, _ := u.c.Exec(u.ctx, "sh", "-c", "grep -E ' (unpack|configure|status installed) (mosquitto|libmosquitto1|libpicohttpparser1|libc6):' /var/log/dpkg.log | tail -n 12; journalctl -u mosquitto --since @"+fmt.Sprint(start.Unix())+" --no-pager -o short-monotonic | grep -E 'Starting|error while loading' | head -n 6")
	t.Logf("the install's order and the unit's starts meanwhile:\n%s", out)

	// A conf.d file only root can read (someone's own, 0600), added while
	// the broker runs: on the reload for a new password the broker, the
	// mosquitto user, stops reading at it and runs on. apply says so and
	// puts its files back. 2.0's unit would restart the broker on them, as
	// root; 2.1's runs the broker as mosquitto from the start, so a restart
	// stops at the same file and the broker, up and serving before, stays
	// down: the rollback must leave it running instead.
	local := "/etc/mosquitto/conf.d/local.conf"
	u.writeFile(t, local, "# a setting of this machine's own\n", 0o600)
	defer os.Remove(u.c.Path(local))
	const blindsThird = "blinds-third-on-2.1"
	u.writeSpec(t, spec(u.hash(t, blindsThird), sensorHash))
	r = u.applyExit(t, 5)
	if !strings.Contains(r.Error, "the broker could not read its configuration again on reload") || !strings.Contains(r.Error, local) || !strings.Contains(r.Error, "restored") {
		t.Errorf("apply with %s unreadable by the broker: %q", local, r.Error)
	}
	t.Logf("rolled back: %s", r.Error)
	if got := u.run(t, "sh", "-c", "systemctl is-active mosquitto || true"); got != "active" {
		t.Fatalf("the broker is %q after the rollback; it was up and serving before\n%s", got, u.run(t, "journalctl", "-u", "mosquitto", "-n", "15", "--no-pager"))
	}
	if got := u.mainPID(t); got != pid {
		t.Errorf("the rollback replaced the broker: pid %s -> %s", pid, got)
	}
	check("after the refused reload and the rollback", []login{
		{tls, "blinds", blindsNew, true},
		{tls, "blinds", blindsThird, false},
		{sensorPort, "sensor", sensor, true},
	})
	// doctor names the file, and says that 2.1's unit would not start the
	// broker with it.
	out, _ = u.c.Exec(u.ctx, "mosqprov", "doctor")
	if !strings.Contains(out, "configuration file "+local+" is not readable by its user mosquitto") || !strings.Contains(out, "2.1's (User=mosquitto) starts it as mosquitto too, so it does not start at all") {
		t.Errorf("doctor with %s unreadable by 2.1's broker:\n%s", local, out)
	}
	t.Logf("2.1's log:\n%s", whole)
}
