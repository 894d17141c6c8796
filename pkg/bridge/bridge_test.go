package bridge

import (
	"crypto/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

func valid() Bridge {
	t := true
	return Bridge{
		Name:      "cloud",
		Addresses: []string{"mqtt.example.com:8883", "[2001:db8::1]:8883"},
		Topics: []Topic{
			{Pattern: "home/#", Direction: Out, QoS: 1, RemotePrefix: "pi1/"},
			{Pattern: "cmd/+/set", Direction: In, QoS: 2},
			{Pattern: "", Direction: Both, LocalPrefix: "a/b", RemotePrefix: "c/d"},
		},
		SystemCA:   true,
		Username:   "pi1",
		Password:   "with inner blanks",
		Protocol:   MQTT5,
		ClientID:   "cloud.raspberrypi.0a1b2c3d",
		KeepAlive:  30,
		TryPrivate: &t,
		StartType:  "lazy",
		Source:     SourceSpec,
	}
}

// Every value that lands in the file is checked: nothing can add a line
// or a directive, and what the broker would refuse is refused first.
func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		edit  func(*Bridge)
		field string
	}{
		{"name with a newline", func(b *Bridge) { b.Name = "a\naddress evil:1" }, "name"},
		{"name with a slash", func(b *Bridge) { b.Name = "../x" }, "name"},
		{"no address", func(b *Bridge) { b.Addresses = nil }, "addresses"},
		{"address without port", func(b *Bridge) { b.Addresses = []string{"mqtt.example.com"} }, "addresses[0]"},
		{"address with a blank", func(b *Bridge) { b.Addresses = []string{"a b:1883"} }, "addresses[0]"},
		{"address port 0", func(b *Bridge) { b.Addresses = []string{"a:0"} }, "addresses[0]"},
		{"address unspecified", func(b *Bridge) { b.Addresses = []string{"0.0.0.0:1883"} }, "addresses[0]"},
		{"address newline", func(b *Bridge) { b.Addresses = []string{"a:1\nremote_password x"} }, "addresses[0]"},
		{"no topics", func(b *Bridge) { b.Topics = nil }, "topics"},
		{"bad direction", func(b *Bridge) { b.Topics[0].Direction = "sideways" }, "topics[0].direction"},
		{"empty direction", func(b *Bridge) { b.Topics[0].Direction = "" }, "topics[0].direction"},
		{"qos 3", func(b *Bridge) { b.Topics[0].QoS = 3 }, "topics[0].qos"},
		{"pattern # inside", func(b *Bridge) { b.Topics[0].Pattern = "a/#/b" }, "topics[0].pattern"},
		{"pattern a+", func(b *Bridge) { b.Topics[0].Pattern = "a+/b" }, "topics[0].pattern"},
		{"pattern blank", func(b *Bridge) { b.Topics[0].Pattern = "a b" }, "topics[0].pattern"},
		{"pattern newline", func(b *Bridge) { b.Topics[0].Pattern = "a\nconnection x" }, "topics[0].pattern"},
		{"empty pattern, one prefix", func(b *Bridge) { b.Topics[2].LocalPrefix = "" }, "topics[2].pattern"},
		{"prefix wildcard", func(b *Bridge) { b.Topics[0].RemotePrefix = "pi/#" }, "topics[0].remote_prefix"},
		{"prefix blank", func(b *Bridge) { b.Topics[0].LocalPrefix = "a b/" }, "topics[0].local_prefix"},
		{"prefix control", func(b *Bridge) { b.Topics[0].LocalPrefix = "a\x01/" }, "topics[0].local_prefix"},
		{"plain TCP to another machine", func(b *Bridge) { b.SystemCA = false }, "tls"},
		{"opt-in with TLS", func(b *Bridge) { b.InsecurePlainTCP = true }, "insecure_plain_tcp"},
		{"ca file and system store", func(b *Bridge) { b.CA = []byte("x") }, "tls"},
		{"bad CA", func(b *Bridge) { b.SystemCA = false; b.CA = []byte("not pem") }, "tls.ca_file"},
		{"cert without key", func(b *Bridge) { b.Cert = []byte("x") }, "tls"},
		{"tls version 1.1", func(b *Bridge) { b.TLSVersion = "tlsv1.1" }, "tls.version"},
		{"username blank", func(b *Bridge) { b.Username = "a b" }, "username"},
		{"username newline", func(b *Bridge) { b.Username = "a\nremote_password x" }, "username"},
		{"password without user", func(b *Bridge) { b.Username = "" }, "password"},
		{"password newline", func(b *Bridge) { b.Password = "a\ntopic # both" }, "password"},
		{"password CR", func(b *Bridge) { b.Password = "a\rb" }, "password"},
		{"password leading blank", func(b *Bridge) { b.Password = " a" }, "password"},
		{"password U+2028", func(b *Bridge) { b.Password = "a\u2028b" }, "password"},
		{"protocol 3.1", func(b *Bridge) { b.Protocol = "3.1" }, "protocol"},
		{"client id empty", func(b *Bridge) { b.ClientID = "" }, "client_id"},
		{"client id blank", func(b *Bridge) { b.ClientID = "a b" }, "client_id"},
		{"keepalive 4", func(b *Bridge) { b.KeepAlive = 4 }, "keepalive"},
		{"start type", func(b *Bridge) { b.StartType = "manual" }, "start_type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := valid()
			b.Topics = append([]Topic(nil), b.Topics...)
			c.edit(&b)
			err := b.Validate()
			ie, ok := err.(*errs.InputError)
			if !ok {
				t.Fatalf("accepted (err %v)", err)
			}
			if ie.Field != c.field {
				t.Fatalf("error names %q, want %q: %v", ie.Field, c.field, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("the error is not one line: %q", err)
			}
		})
	}
}

// Plain TCP is allowed to this machine; to another one only with the
// opt-in, and then with a warning.
func TestPlainTCP(t *testing.T) {
	b := valid()
	b.SystemCA = false
	b.Addresses = []string{"localhost:1883", "127.0.0.1:1884", "[::1]:1885"}
	if err := b.Validate(); err != nil || len(b.Warnings()) != 0 {
		t.Fatalf("loopback: %v %v", err, b.Warnings())
	}
	b.Addresses = append(b.Addresses, "192.168.1.2:1883")
	if err := b.Validate(); err == nil {
		t.Fatal("plain TCP to another machine accepted without the opt-in")
	}
	b.InsecurePlainTCP = true
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := b.Warnings(); len(w) != 1 || !strings.Contains(w[0], "in clear") {
		t.Fatalf("warnings %q", w)
	}
}

// What Render writes, Parse reads back the same.
func TestRenderParse(t *testing.T) {
	ca, cert, key := testCert(t)
	f := false
	b1 := valid()
	b2 := Bridge{Name: "hub", Addresses: []string{"localhost:8883"}, Topics: []Topic{{Pattern: "#", Direction: Both}},
		CA: ca, Cert: cert, Key: key, TLSVersion: "tlsv1.3", ClientID: "hub.x", Notifications: &f, CleanSession: &f, OutgoingRetain: &f, Source: SourceCLI}
	data, err := Render([]Bridge{b1, b2})
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		"connection cloud\naddress mqtt.example.com:8883 2001:db8::1:8883\n",
		"bridge_protocol_version mqttv50\n", "remote_password with inner blanks\n", "bridge_capath /etc/ssl/certs\n",
		"topic home/# out 1 \"\" pi1/\n", "topic cmd/+/set in 2\n", "topic \"\" both 0 a/b c/d\n",
		"bridge_cafile /etc/mosquitto/bridges/hub-ca.crt\n", "bridge_keyfile /etc/mosquitto/bridges/hub.key\n",
		"notifications false\n", "# bridge hub, from mosqprov bridge add\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("parsed %d bridges", len(got))
	}
	got[1].CA, got[1].Cert, got[1].Key = ca, cert, key // Read loads them from the files
	for i, want := range []Bridge{b1, b2} {
		got[i].caFile, got[i].certFile, got[i].keyFile = "", "", ""
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("bridge %d:\n got %+v\nwant %+v", i, got[i], want)
		}
	}
	if again, _ := Render(got); string(again) != text {
		t.Errorf("render after parse differs:\n%s", again)
	}
}

func TestValidateAll(t *testing.T) {
	a, b := valid(), valid()
	if err := ValidateAll([]Bridge{a, b}); err == nil {
		t.Fatal("two bridges with one name accepted")
	}
	b.Name = "other"
	if err := ValidateAll([]Bridge{a, b}); err == nil || !strings.Contains(err.Error(), "same client id") {
		t.Fatalf("two bridges with one client id: %v", err)
	}
	b.Topics = nil
	if err := ValidateAll([]Bridge{a, b}); err == nil || !strings.HasPrefix(err.Error(), "bridge other topics:") {
		t.Fatalf("the error does not name the bridge: %v", err)
	}
}

func TestMaskPasswords(t *testing.T) {
	old := []byte(Header + "\nconnection a\nremote_password one\nconnection b\nremote_password two\n")
	new := []byte(Header + "\nconnection a\nremote_password one\nconnection b\nremote_password three\nconnection c\nremote_password four\n")
	mo, mn := MaskPasswords(old, new)
	for _, s := range []string{"one", "two", "three", "four"} {
		if strings.Contains(string(mo)+string(mn), "remote_password "+s) {
			t.Fatalf("password %s shown:\n%s\n%s", s, mo, mn)
		}
	}
	want := Header + "\nconnection a\nremote_password (password masked)\nconnection b\nremote_password (new password masked)\nconnection c\nremote_password (password masked)\n"
	if string(mn) != want {
		t.Fatalf("masked new:\n%s", mn)
	}
}

// The default client id differs between two Pis with one hostname and is
// a single word.
func TestClientIDFor(t *testing.T) {
	a := ClientIDFor("cloud", "raspberrypi", []byte("aaaa\n"))
	b := ClientIDFor("cloud", "raspberrypi", []byte("bbbb\n"))
	if a == b || !strings.HasPrefix(a, "cloud.raspberrypi.") || len(a) != len("cloud.raspberrypi.")+8 {
		t.Fatalf("%q %q", a, b)
	}
	if got := ClientIDFor("cloud", "pi with blanks.local", nil); got != "cloud.piwithblanks" {
		t.Fatalf("%q", got)
	}
}

func testCert(t *testing.T) (ca, cert, key []byte) {
	t.Helper()
	now := time.Now()
	c, err := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: "test CA", KeyType: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := pki.LoadCA(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.IssueClient(rand.Reader, now, loaded, pki.ClientRequest{Name: "pi1", KeyType: pki.ECDSAP256, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	return c.CertPEM, leaf.CertPEM, leaf.KeyPEM
}
