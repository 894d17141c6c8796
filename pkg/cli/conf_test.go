package cli

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// recordedApp is an App on a temporary root whose service is a booted
// systemd answered by a Recorder, so the test sees which systemctl calls a
// command makes (and that there is at most one reload or restart).
func recordedApp(t *testing.T, root string, dryRun bool) (*App, *system.Recorder, *bytes.Buffer) {
	t.Helper()
	rec := &system.Recorder{}
	rec.On("systemctl is-active", system.Output{Stdout: []byte("active\n")}, nil)
	var out bytes.Buffer
	a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	a.Sys = system.NewReal(root, system.WithRunner(rec))
	var host system.System = system.NewReal("/", system.WithRunner(rec))
	if dryRun {
		a.Sys = system.NewDryRun(system.NewReal(root, system.WithRunner(rec)))
		host = system.NewDryRun(system.NewReal("/", system.WithRunner(rec)))
	}
	a.Service = systemd.New(host)
	a.Service.Booted = func() bool { return true }
	a.Service.Listeners = func(context.Context) ([]systemd.Listener, error) { return nil, nil }
	return a, rec, &out
}

func mutating(rec *system.Recorder) []string {
	var lines []string
	for _, l := range rec.Lines() {
		if !strings.Contains(l, "is-active") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestConfAndACLSettleTheBroker(t *testing.T) {
	root := t.TempDir()
	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"conf", "write"}, []string{"systemctl restart mosquitto"}},
		{[]string{"conf", "write"}, nil},
		// The ACL file and the acl_file line both change: one reload.
		{[]string{"acl", "allow", "alice", "home/#", "--readwrite"}, []string{"systemctl reload mosquitto"}},
		{[]string{"acl", "allow", "alice", "home/#", "--readwrite"}, nil},
		{[]string{"conf", "write", "--listener", "mqtts:8884"}, []string{"systemctl restart mosquitto"}},
		{[]string{"--dry-run", "conf", "write", "--listener", "mqtt"}, nil},
		{[]string{"conf", "write", "--listener", "mqtt:1883:0.0.0.0:x"}, nil},
	}
	for _, s := range steps {
		a, rec, out := recordedApp(t, root, s.args[0] == "--dry-run")
		code := Run(context.Background(), a, s.args)
		wantCode := 0
		if strings.HasSuffix(s.args[len(s.args)-1], ":x") {
			wantCode = ExitUsage
		}
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\n%s", s.args, code, wantCode, out)
		}
		if diff := cmp.Diff(s.want, mutating(rec)); diff != "" {
			t.Errorf("%v: systemctl calls (-want +got):\n%s\n%s", s.args, diff, out)
		}
	}
}

func TestParseListener(t *testing.T) {
	cases := map[string]string{
		"mqtt":                 "mqtt 1883 127.0.0.1 false",
		"mqtt:1884":            "mqtt 1884 127.0.0.1 false",
		"mqtt:1883:*":          "mqtt 1883  false",
		"mqtt:1883:::1":        "mqtt 1883 ::1 false",
		"mqtt:1883:[::1]":      "mqtt 1883 ::1 false",
		"mqtts":                "mqtts 8883  false",
		"mqtts:8884:10.0.0.1":  "mqtts 8884 10.0.0.1 false",
		"wss,mtls":             "wss 9443  true",
		"ws":                   "ws 8080 127.0.0.1 false",
		"mqtts::0.0.0.0,mtls":  "mqtts 8883 0.0.0.0 true",
		"wss:9444:::,mtls":     "wss 9444 :: true",
		"mqtts:8883:127.0.0.1": "mqtts 8883 127.0.0.1 false",
	}
	for spec, want := range cases {
		l, err := parseListener(spec)
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			continue
		}
		if got := fmt.Sprintf("%s %d %s %v", l.Type, l.Port, l.Bind, l.MutualTLS); got != want {
			t.Errorf("%s: got %q, want %q", spec, got, want)
		}
	}
	for _, bad := range []string{"", "mqttx", "mqtt:abc", "mqtt:1883:", "mqtts,mtls,x", "MQTT"} {
		if _, err := parseListener(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestServiceReadsBrokerConfig proves the wiring of pkg/conf's reader into
// the service (app.go, service.go): what Settle and `service status` dial,
// including 2.0's default listener, and the log file a failure shows.
func TestServiceReadsBrokerConfig(t *testing.T) {
	sys := system.NewReal(t.TempDir())
	write := func(p, data string) {
		t.Helper()
		if _, err := sys.EnsureDir(path.Dir(p), system.Attr{Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		if _, err := sys.WriteFile(p, []byte(data), system.Attr{Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	a.Sys = sys
	if err := a.init("test"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	write(layout.MosquittoConf, "log_dest file /var/log/mosquitto/mosquitto.log\ninclude_dir /etc/mosquitto/conf.d\n")
	write("/var/log/mosquitto/mosquitto.log", "Error: Address already in use\n")
	ls, err := a.Service.Listeners(ctx)
	if want := []systemd.Listener{{Port: 1883, Bind: "127.0.0.1"}}; err != nil || !cmp.Equal(ls, want) {
		t.Errorf("no listener declared: %v, %v; want 2.0's default %v", ls, err, want)
	}
	write(layout.DropIn, "listener 8883\nlistener 1884 ::1\n")
	ls, err = a.Service.Listeners(ctx)
	if want := []systemd.Listener{{Port: 8883}, {Port: 1884, Bind: "::1"}}; err != nil || !cmp.Equal(ls, want) {
		t.Errorf("drop-in listeners: %v, %v; want %v", ls, err, want)
	}
	want := []string{"/var/log/mosquitto/mosquitto.log (last lines):", "Error: Address already in use"}
	if got := a.Service.BrokerLog(); !cmp.Equal(got, want) {
		t.Errorf("broker log %q, want %q", got, want)
	}
}
