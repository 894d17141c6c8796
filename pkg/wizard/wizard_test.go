package wizard

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
)

// step is one scripted answer: the question must contain ask; answer is a
// string, bool, []string, dflt (take the default), or an error to return.
type step struct {
	ask    string
	answer any
}

type dflt struct{}

// script is a Prompter that answers from a list and records what it saw.
type script struct {
	t        *testing.T
	steps    []step
	defaults map[string]any // question -> default offered
	rejected []string       // validation errors the wizard showed
	said     []string
	options  map[string][]Option
}

func newScript(t *testing.T, steps ...step) *script {
	return &script{t: t, steps: steps, defaults: map[string]any{}, options: map[string][]Option{}}
}

func (s *script) next(message string, def any) (any, error) {
	s.t.Helper()
	s.defaults[message] = def
	if len(s.steps) == 0 {
		s.t.Fatalf("unexpected question %q", message)
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	if !strings.Contains(message, st.ask) {
		s.t.Fatalf("asked %q, script expected a question containing %q", message, st.ask)
	}
	if err, ok := st.answer.(error); ok {
		return nil, err
	}
	if _, ok := st.answer.(dflt); ok {
		return def, nil
	}
	return st.answer, nil
}

func (s *script) Input(message, help, def string, validate func(string) error) (string, error) {
	for {
		a, err := s.next(message, def)
		if err != nil {
			return "", err
		}
		v := a.(string)
		if validate != nil {
			if err := validate(v); err != nil {
				s.rejected = append(s.rejected, err.Error())
				continue // asked again, as Terminal does
			}
		}
		return v, nil
	}
}

func (s *script) Password(message, help string) (string, error) {
	a, err := s.next(message, "")
	if err != nil {
		return "", err
	}
	return a.(string), nil
}

func (s *script) Confirm(message, help string, def bool) (bool, error) {
	a, err := s.next(message, def)
	if err != nil {
		return false, err
	}
	return a.(bool), nil
}

func (s *script) Select(message, help string, opts []Option, def string) (string, error) {
	s.options[message] = opts
	a, err := s.next(message, def)
	if err != nil {
		return "", err
	}
	return a.(string), nil
}

func (s *script) MultiSelect(message, help string, opts []Option, defs []string, validate func([]string) error) ([]string, error) {
	s.options[message] = opts
	for {
		a, err := s.next(message, defs)
		if err != nil {
			return nil, err
		}
		v := a.([]string)
		if validate != nil {
			if err := validate(v); err != nil {
				s.rejected = append(s.rejected, err.Error())
				continue
			}
		}
		return v, nil
	}
}

func (s *script) Say(format string, args ...any) {
	s.said = append(s.said, fmt.Sprintf(format, args...))
}

func (s *script) done() {
	s.t.Helper()
	if len(s.steps) > 0 {
		s.t.Fatalf("questions not asked: %+v", s.steps)
	}
}

type host struct {
	name  string
	addrs []string
}

func (h host) Hostname() (string, error) { return h.name, nil }
func (h host) Addrs() ([]net.IP, error) {
	var out []net.IP
	for _, a := range h.addrs {
		out = append(out, net.ParseIP(a))
	}
	return out, nil
}

var pi = host{"raspberrypi", []string{"192.168.1.50", "fd00::50"}}

func TestFreshSetup(t *testing.T) {
	p := newScript(t,
		step{"Host name", dflt{}},
		step{"Other names", dflt{}},
		step{"IP addresses", []string{"192.168.1.50", "127.0.0.1"}},
		step{"Other IP addresses", "192.168.1.400"}, // rejected
		step{"Other IP addresses", "192.168.1.60, 127.0.0.1"},
		step{"Listeners", []string{}},      // rejected: nothing chosen
		step{"Listeners", []string{"wss"}}, // rejected: only WebSockets
		step{"Listeners", []string{"mqtts", "wss", "mqtt"}},
		step{"Key type", dflt{}},
		step{"Add a user?", true},
		step{"User name", "bad:name"}, // rejected
		step{"User name", "blinds"},
		step{"Password for blinds", ""}, // Enter alone: said why, asked again
		step{"Password for blinds", "first-try"},
		step{"Password for blinds (again)", "typo"},
		step{"Password for blinds", "s3cret-blinds"},
		step{"Password for blinds (again)", "s3cret-blinds"},
		step{"Add another user?", true},
		step{"User name", "blinds"}, // rejected: already a user
		step{"User name", "android-app"},
		step{"Password for android-app", "s3cret-app"},
		step{"Password for android-app (again)", "s3cret-app"},
		step{"Add another user?", false},
		step{"ACL rules", true},
		step{"Topics blinds", "home/blinds/#, home/living room/#"},
		step{"Topics android-app", "home/#/bad"}, // rejected
		step{"Topics android-app", dflt{}},
	)
	s, err := Run(p, pi, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.done()
	if s.TLS.CAName != "mosqprov CA raspberrypi.local" {
		t.Errorf("a new broker's CA is named %q, not after the broker", s.TLS.CAName)
	}

	if got := p.defaults["Host name clients use to reach the broker"]; got != "raspberrypi.local" {
		t.Errorf("host name default %v", got)
	}
	if got := p.defaults["Other names for the broker (comma separated, may be empty)"]; got != "raspberrypi, localhost" {
		t.Errorf("names default %v", got)
	}
	if got := p.defaults["IP addresses clients may connect to (they go into the certificate)"]; !cmp.Equal(got, []string{"192.168.1.50", "127.0.0.1"}) {
		t.Errorf("ip defaults %v", got)
	}
	if got := p.defaults["Listeners"]; !cmp.Equal(got, []string{"mqtt", "mqtts"}) {
		t.Errorf("listener defaults %v", got)
	}
	if got := p.defaults["Key type"]; got != "rsa-2048" {
		t.Errorf("key type default %v", got)
	}
	if len(p.rejected) != 6 {
		t.Errorf("rejections %q", p.rejected)
	}
	if !strings.Contains(strings.Join(p.said, "\n"), "The two entries differ") {
		t.Errorf("said %q", p.said)
	}
	if !strings.Contains(strings.Join(p.said, "\n"), "Nothing was typed: blinds needs a password to log in (it is not shown while you type).") {
		t.Errorf("an empty password: said %q", p.said)
	}
	for _, o := range p.options["Listeners"] {
		if o.Note == "" {
			t.Errorf("listener %s has no security note", o.Value)
		}
	}

	if s.Hostname != "raspberrypi.local" || !cmp.Equal(s.Names, []string{"raspberrypi", "localhost"}) || !cmp.Equal(s.IPs, []string{"192.168.1.50", "127.0.0.1", "192.168.1.60"}) {
		t.Errorf("names %q %q %q", s.Hostname, s.Names, s.IPs)
	}
	wantListeners := []spec.Listener{{Type: "mqtt", Port: 1883, Bind: "127.0.0.1"}, {Type: "mqtts", Port: 8883}, {Type: "wss", Port: 9443}}
	if diff := cmp.Diff(wantListeners, s.Listeners); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	wantACL := []spec.ACLRule{{User: "blinds", ReadWrite: []string{"home/blinds/#", "home/living room/#"}}, {User: "android-app", ReadWrite: []string{"android-app/#"}}}
	if diff := cmp.Diff(wantACL, s.ACL); diff != "" {
		t.Errorf("acl (-want +got):\n%s", diff)
	}
	// Passwords are stored as Mosquitto hashes that verify, never in clear.
	for i, pw := range []string{"s3cret-blinds", "s3cret-app"} {
		u := s.Users[i]
		h, err := passwd.ParseHash(u.Hash)
		if err != nil || !h.Verify(pw) || u.PasswordEnv != "" || u.PasswordFile != "" {
			t.Errorf("user %+v: %v", u, err)
		}
	}
	data, err := spec.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"s3cret-blinds", "s3cret-app", "first-try", "typo"} {
		if strings.Contains(string(data), pw) {
			t.Fatalf("broker.yaml holds a password in clear:\n%s", data)
		}
	}
}

func TestStartsFromExistingSpec(t *testing.T) {
	start, err := spec.Parse("broker.yaml", []byte(`hostname: mqtt.home.arpa
names: [pi]
ips: [192.168.1.40]
tls: {key_type: ecdsa-p256}
listeners:
  - {type: mqtts, port: 18883, max_connections: 300}
  - {type: ws, port: 8081, bind: 127.0.0.1}
users:
  - {name: bot, password_env: BOT_PASSWORD}
acl:
  - {user: bot, read: ["home/#"]}
broker:
  max_queued_messages: 5000
  log_dest: [syslog]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := newScript(t,
		step{"Host name", dflt{}},
		step{"Other names", dflt{}},
		step{"IP addresses", dflt{}},
		step{"Other IP addresses", dflt{}},
		step{"Listeners", []string{"mqtts", "ws", "mqtt"}},
		step{"Key type", dflt{}},
		step{"Add another user?", false},
		step{"ACL rules", dflt{}},
	)
	s, err := Run(p, pi, start)
	if err != nil {
		t.Fatal(err)
	}
	p.done()
	if p.defaults["Listeners"] == nil || !cmp.Equal(p.defaults["Listeners"], []string{"mqtts", "ws"}) {
		t.Errorf("listener defaults %v", p.defaults["Listeners"])
	}
	var ipNotes []string
	for _, o := range p.options["IP addresses clients may connect to (they go into the certificate)"] {
		ipNotes = append(ipNotes, o.Value+"="+o.Note)
	}
	if !strings.Contains(strings.Join(ipNotes, ";"), "192.168.1.40=in broker.yaml, not on this machine now") {
		t.Errorf("ip options %q", ipNotes)
	}
	for _, o := range p.options["Listeners"] {
		if o.Value == "mqtt" && !strings.Contains(o.Note, "plain MQTT, on 127.0.0.1 only") {
			t.Errorf("a new mqtt listener is on loopback; its note says %q", o.Note)
		}
	}
	if s.Hostname != "mqtt.home.arpa" || !cmp.Equal(s.Names, []string{"pi"}) || !cmp.Equal(s.IPs, []string{"192.168.1.40"}) || s.TLS.KeyType != "ecdsa-p256" {
		t.Errorf("%+v", s)
	}
	// Kept listeners keep their ports and binds; the new one gets defaults.
	maxConn := 300
	want := []spec.Listener{{Type: "mqtt", Port: 1883, Bind: "127.0.0.1"}, {Type: "mqtts", Port: 18883, MaxConnections: &maxConn}, {Type: "ws", Port: 8081, Bind: "127.0.0.1"}}
	if diff := cmp.Diff(want, s.Listeners); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	// broker: settings are asked about nowhere and kept as they were.
	if diff := cmp.Diff(start.Broker, s.Broker); diff != "" || s.Broker.MaxQueuedMessages == nil {
		t.Errorf("broker: settings not kept (-start +got):\n%s", diff)
	}
	out, err := spec.Marshal(s)
	if err != nil || !strings.Contains(string(out), "broker:\n  max_queued_messages: 5000\n  log_dest:\n    - syslog\n") || !strings.Contains(string(out), "max_connections: 300") {
		t.Errorf("broker.yaml the wizard writes lost the settings:\n%s", out)
	}
	if len(s.Users) != 1 || s.Users[0].PasswordEnv != "BOT_PASSWORD" || len(s.ACL) != 1 {
		t.Errorf("users %+v acl %+v", s.Users, s.ACL)
	}
	if start.Hostname != "mqtt.home.arpa" || len(start.Listeners) != 2 {
		t.Error("the starting spec was modified")
	}
}

func TestInterruptAnywhere(t *testing.T) {
	full := []step{
		{"Host name", dflt{}},
		{"Other names", dflt{}},
		{"IP addresses", dflt{}},
		{"Other IP addresses", dflt{}},
		{"Listeners", dflt{}},
		{"Key type", dflt{}},
		{"Add a user?", true},
		{"User name", "u1"},
		{"Password for u1", "pw-u1-long"},
		{"Password for u1 (again)", "pw-u1-long"},
		{"Add another user?", false},
		{"ACL rules", false},
	}
	for i := range full {
		steps := append(append([]step(nil), full[:i]...), step{full[i].ask, errs.ErrInterrupted})
		p := newScript(t, steps...)
		s, err := Run(p, pi, nil)
		if !errors.Is(err, errs.ErrInterrupted) || s != nil {
			t.Errorf("Ctrl-C at %q: %v, %v", full[i].ask, s, err)
		}
	}
	// And the whole script, uninterrupted, succeeds: the loop above tested every question.
	if _, err := Run(newScript(t, full...), pi, nil); err != nil {
		t.Fatal(err)
	}
}

// A plain listener broker.yaml already opens to the network is kept as it
// is, so its note must not promise loopback.
func TestKeptOpenMQTTListenerNote(t *testing.T) {
	start, err := spec.Parse("broker.yaml", []byte("hostname: pi.local\nlisteners: [{type: mqtt, bind: 0.0.0.0}, {type: mqtts}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := newScript(t,
		step{"Host name", dflt{}}, step{"Other names", dflt{}}, step{"IP addresses", dflt{}}, step{"Other IP addresses", dflt{}},
		step{"Listeners", dflt{}}, step{"Key type", dflt{}}, step{"Add a user?", false})
	s, err := Run(p, pi, start)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range p.options["Listeners"] {
		if o.Value == "mqtt" && o.Note != "port 1883, plain MQTT on every interface: passwords cross the network in clear" {
			t.Errorf("note %q", o.Note)
		}
	}
	if s.Listeners[0].Bind != "0.0.0.0" {
		t.Errorf("the kept listener changed: %+v", s.Listeners[0])
	}
}

// Every key type and every listener the wizard offers says what it means.
func TestEveryChoiceHasANote(t *testing.T) {
	for _, k := range pki.KeyTypes {
		if keyNote(k) == "" {
			t.Errorf("key type %s has no note", k)
		}
	}
	for _, l := range []string{spec.MQTT, spec.MQTTS, spec.WS, spec.WSS} {
		if listenerNote(l) == "" {
			t.Errorf("listener %s has no security note", l)
		}
	}
}
