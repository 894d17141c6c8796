package plan

import (
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// testPerListenerAuthInRealSystemd (issue 14 §3): anonymous clients on
// the loopback mqtt listener only, passwords on mqtts, a user limited to
// one listener, applied to the broker of Debian's unit and checked with
// real clients in the container's network: anonymous works only where
// allowed, the limited user is refused on the other listeners, the broker
// logs no deprecation, warning or error for what mosqprov wrote, a second
// apply writes nothing and restarts nothing, and a changed password is one
// reload that the broker (by then the mosquitto user) takes.
func testPerListenerAuthInRealSystemd(t *testing.T, u *inUnit) {
	start := time.Now()
	defer func() {
		t.Logf("per-listener authentication under real systemd: %s", time.Since(start).Round(time.Second))
	}()
	const plain, tls, sensorPort = 1883, 8883, 8884
	blinds, sensor, sensorNew := "blinds-secret", "sensor-secret", "sensor-new-secret"
	blindsHash := u.hash(t, blinds)
	spec := func(sensorHash string) string {
		return fmt.Sprintf(`hostname: pi.home.arpa
ips: [127.0.0.1]
listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1, allow_anonymous: true, users: [blinds]}
  - {type: mqtts, port: %d, users: [blinds]}
  - {type: mqtts, port: %d, users: [sensor]}
users:
  - {name: blinds, hash: "%s"}
  - {name: sensor, hash: "%s"}
acl:
  - {pattern: true, readwrite: ["%%u/#"]}
  - {anonymous: true, readwrite: ["local/#"]}
`, plain, tls, sensorPort, blindsHash, sensorHash)
	}
	client := func(port int, user, pw string) brokertest.Client { return u.client(port, plain, user, pw) }
	check := func(t *testing.T, stage string, logins []login) {
		t.Helper()
		checkLogins(t, stage, logins, func(port int, user, pw string) error {
			return client(port, user, pw).Publish(user+"/auth", "x")
		})
	}

	u.writeSpec(t, spec(u.hash(t, sensor)))
	mark := u.logMark(t)
	r := u.apply(t)
	if !r.Changed || !r.did("service mosquitto", "restart") {
		t.Fatalf("apply with authentication per listener: %+v", r.Changes)
	}
	dropIn, err := os.ReadFile(u.c.Path(layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	// Debian 12 and 13 ship 2.0: its own form.
	for _, want := range []string{"per_listener_settings true\n", "password_file " + conf.ListenerPasswordFile(layout.PasswordFile, sensorPort) + "\n"} {
		if !strings.Contains(string(dropIn), want) {
			t.Fatalf("the drop-in lacks %q:\n%s", want, dropIn)
		}
	}
	// The limited listener's password file is the broker's own secret: it
	// reads it as the mosquitto user on reload.
	if got := u.run(t, "stat", "-c", "%a %U:%G", conf.ListenerPasswordFile(layout.PasswordFile, sensorPort)); got != "600 mosquitto:mosquitto" {
		t.Errorf("the limited listener's password file is %s, want 600 mosquitto:mosquitto", got)
	}
	logins := []login{
		{plain, "", "", true},
		{plain, "blinds", blinds, true},
		{plain, "blinds", "wrong", false},
		{plain, "sensor", sensor, false},
		{tls, "", "", false},
		{tls, "blinds", blinds, true},
		{tls, "sensor", sensor, false},
		{sensorPort, "", "", false},
		{sensorPort, "sensor", sensor, true},
		{sensorPort, "blinds", blinds, false},
	}
	check(t, "after apply", logins)
	anon := client(plain, "", "")
	if ok, err := brokertest.Roundtrip(anon, anon, "local/lamp", "on"); err != nil || !ok {
		t.Errorf("an anonymous round trip on the loopback listener: delivered=%v %v", ok, err)
	}

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

	// A new password for the limited user: one reload, the same broker
	// process, and the new password opens its listener (and only that).
	u.writeSpec(t, spec(u.hash(t, sensorNew)))
	r = u.apply(t)
	if !r.did("service mosquitto", "reload") || r.did("service mosquitto", "restart") {
		t.Fatalf("password change: %+v", r.Changes)
	}
	if got := u.mainPID(t); got != pid {
		t.Fatalf("the password change replaced the broker: pid %s -> %s", pid, got)
	}
	waitFor(t, "the new password after the reload", func() bool {
		return client(sensorPort, "sensor", sensorNew).Publish("sensor/auth", "x") == nil
	})
	check(t, "after the reload", []login{
		{sensorPort, "sensor", sensor, false},
		{tls, "sensor", sensorNew, false},
		{plain, "sensor", sensorNew, false},
		{tls, "blinds", blinds, true},
		{plain, "", "", true},
	})

	log := u.logSince(t, mark)
	defer func() {
		// A conf.d file only root can read (someone's own, 0600), sorted
		// before mosqprov.conf: on SIGHUP the broker, by then the mosquitto
		// user, stops reading at it and never re-reads the password file.
		// Such a reload is not a success: apply says so and puts its files
		// back (the broker restarted on them, as root), and so does
		// `service reload`.
		local := "/etc/mosquitto/conf.d/local.conf"
		u.writeFile(t, local, "# a setting of this machine's own\n", 0o600)
		defer os.Remove(u.c.Path(local))
		u.writeSpec(t, spec(u.hash(t, "sensor-third-secret")))
		r := u.applyExit(t, 5)
		if !strings.Contains(r.Error, "the broker could not read its configuration again on reload") || !strings.Contains(r.Error, "Unable to open config file "+local) || !strings.Contains(r.Error, "restored") {
			t.Errorf("apply with %s unreadable by the broker: %q", local, r.Error)
		}
		check(t, "after the refused reload and the rollback", []login{
			{sensorPort, "sensor", sensorNew, true},
			{sensorPort, "sensor", "sensor-third-secret", false},
		})
		out, err := u.c.Exec(u.ctx, "mosqprov", "service", "reload")
		if err == nil || !strings.Contains(out, "the broker could not read its configuration again on reload") || !strings.Contains(out, "Unable to open config file "+local) {
			t.Errorf("service reload with %s unreadable by the broker: %v\n%s", local, err, out)
		}
		// doctor names the file and says how to fix it.
		out, _ = u.c.Exec(u.ctx, "mosqprov", "doctor")
		if !strings.Contains(out, "configuration file "+local+" is not readable by its user mosquitto") || !strings.Contains(out, "sudo chgrp mosquitto "+local+" && sudo chmod 640 "+local) {
			t.Errorf("doctor with %s unreadable by the broker:\n%s", local, out)
		}
		os.Chmod(u.c.Path(local), 0o644)
		if out, err := u.c.Exec(u.ctx, "mosqprov", "service", "reload"); err != nil {
			t.Errorf("service reload with %s readable: %v\n%s", local, err, out)
		}
	}()
	if !strings.Contains(log, "Reloading config.") {
		t.Fatalf("the broker's log shows no reload:\n%s", log)
	}
	if bad := complaints(log); len(bad) > 0 {
		t.Errorf("the broker complains about what mosqprov wrote:\n%s\nwhole log:\n%s", strings.Join(bad, "\n"), log)
	}
}

// complaints are the lines of the broker's log that say deprecated,
// warning, error or unable, in any case. (mosqprov's readiness check after
// a restart or reload reads the kernel's sockets: it used to connect and
// leave, which 2.0 logs on a TLS listener as an OpenSSL "unexpected eof"
// error.)
func complaints(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		l := strings.ToLower(line)
		for _, bad := range []string{"deprecat", "warning", "error", "unable"} {
			if strings.Contains(l, bad) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}
