package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func newCA(t testing.TB, kt KeyType) *CA {
	t.Helper()
	issued, err := NewCA(rand.Reader, now, CARequest{CommonName: "mosqprov CA test", KeyType: kt})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(issued.CertPEM, issued.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestNewCA(t *testing.T) {
	ca := newCA(t, ECDSAP256)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Fatalf("basic constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("key usage %v", c.KeyUsage)
	}
	if len(c.SubjectKeyId) != 20 {
		t.Fatalf("subject key id %x", c.SubjectKeyId)
	}
	if c.Subject.CommonName != "mosqprov CA test" {
		t.Fatalf("CN %q", c.Subject.CommonName)
	}
	// The span a client checks is NotAfter − NotBefore: exactly the
	// documented days, the backdated hour included in it.
	if got := c.NotAfter.Sub(c.NotBefore); got != 3650*24*time.Hour || !c.NotBefore.Before(now) {
		t.Fatalf("lifetime %v from %v", got, c.NotBefore)
	}
	if c.SerialNumber.BitLen() < 100 || c.SerialNumber.BitLen() > 128 {
		t.Fatalf("serial has %d bits", c.SerialNumber.BitLen())
	}
	// basicConstraints must be critical (RFC 5280 4.2.1.9 for CA certificates).
	for _, e := range c.Extensions {
		if e.Id.Equal([]int{2, 5, 29, 19}) && !e.Critical {
			t.Fatal("basicConstraints is not critical")
		}
	}
}

// TestNewCAWithExistingKey: CARequest.Key (finishing an interrupted CA)
// signs with that key and makes no other.
func TestNewCAWithExistingKey(t *testing.T) {
	key, err := GenerateKey(rand.Reader, ECDSAP384)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := NewCA(rand.Reader, now, CARequest{CommonName: "x", KeyType: RSA2048, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if issued.Key != key || !KeyMatches(issued.Cert, key) || KeyTypeOf(issued.Cert.PublicKey) != ECDSAP384 {
		t.Fatalf("the CA does not use the given key (%s)", KeyTypeOf(issued.Cert.PublicKey))
	}
	if _, err := LoadCA(issued.CertPEM, issued.KeyPEM); err != nil {
		t.Fatal(err)
	}
}

func TestSerialComesFromTheGivenReader(t *testing.T) {
	// Same random stream, same serial: callers can make tests deterministic.
	// The key is given: ECDSA key generation reads a random extra byte from
	// its reader (crypto/internal/randutil), which would shift the serial.
	key, err := GenerateKey(rand.Reader, ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	src := func() *mrand.ChaCha8 { return mrand.NewChaCha8([32]byte{1}) }
	a, err := NewCA(src(), now, CARequest{CommonName: "x", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCA(src(), now, CARequest{CommonName: "x", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) != 0 {
		t.Fatal("serials differ for the same random stream")
	}
	if _, err := NewCA(bytes.NewReader(make([]byte, 64)), now, CARequest{CommonName: "x", KeyType: ECDSAP256}); err == nil {
		t.Fatal("an all-zero serial was accepted")
	}
}

func TestIssueServer(t *testing.T) {
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			if testing.Short() && kt == RSA4096 {
				t.Skip("slow key")
			}
			ca := newCA(t, ECDSAP256)
			s, err := IssueServer(rand.Reader, now, ca, ServerRequest{
				Names: []string{"Pi.local", "192.168.1.10", "localhost", "pi.local"}, IPs: []string{"::1", "127.0.0.1"},
				KeyType: kt, Days: ServerDays,
			})
			if err != nil {
				t.Fatal(err)
			}
			c := s.Cert
			if diff := cmp.Diff([]string{"pi.local", "localhost"}, c.DNSNames); diff != "" {
				t.Errorf("DNS SANs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"192.168.1.10", "::1", "127.0.0.1"}, SANs(c)[2:]); diff != "" {
				t.Errorf("IP SANs (-want +got):\n%s", diff)
			}
			if len(c.IPAddresses[0]) != 4 {
				t.Errorf("IPv4 SAN is %d bytes", len(c.IPAddresses[0]))
			}
			if c.Subject.CommonName != "pi.local" {
				t.Errorf("CN %q", c.Subject.CommonName)
			}
			if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, c.ExtKeyUsage); diff != "" {
				t.Error(diff)
			}
			want := x509.KeyUsageDigitalSignature
			if strings.HasPrefix(string(kt), "rsa") {
				want |= x509.KeyUsageKeyEncipherment
			}
			if c.KeyUsage != want {
				t.Errorf("key usage %v, want %v", c.KeyUsage, want)
			}
			if KeyTypeOf(c.PublicKey) != kt {
				t.Errorf("key type %s", KeyTypeOf(c.PublicKey))
			}
			if !bytes.Equal(c.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(c.SubjectKeyId) == 0 {
				t.Error("AKID/SKID")
			}
			if c.IsCA {
				t.Error("leaf is a CA")
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != 825*24*time.Hour || !c.NotBefore.Before(now) {
				t.Errorf("lifetime %v from %v", got, c.NotBefore)
			}
			if err := Verify(c, pool(ca.Cert), nil, x509.ExtKeyUsageServerAuth, now); err != nil {
				t.Error(err)
			}
			for _, h := range []string{"pi.local", "localhost", "192.168.1.10", "::1"} {
				if err := c.VerifyHostname(h); err != nil {
					t.Error(err)
				}
			}
			if err := c.VerifyHostname("other.local"); err == nil {
				t.Error("other.local matched")
			}
			k, err := ParsePrivateKey(s.KeyPEM)
			if err != nil || !KeyMatches(c, k) {
				t.Fatalf("key: %v", err)
			}
			if !bytes.HasPrefix(s.KeyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
				t.Error("key is not PKCS#8")
			}
		})
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestIssueClient(t *testing.T) {
	ca := newCA(t, RSA2048)
	c, err := IssueClient(rand.Reader, now, ca, ClientRequest{Name: "blinds-esp32", KeyType: ECDSAP256, Days: 365})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cert.NotAfter.Sub(c.Cert.NotBefore); got != 365*24*time.Hour {
		t.Fatalf("lifetime %v", got)
	}
	if c.Cert.Subject.CommonName != "blinds-esp32" || len(c.Cert.DNSNames) != 0 {
		t.Fatalf("subject %v SANs %v", c.Cert.Subject, c.Cert.DNSNames)
	}
	if err := Verify(c.Cert, pool(ca.Cert), nil, x509.ExtKeyUsageClientAuth, now); err != nil {
		t.Fatal(err)
	}
	if err := Verify(c.Cert, pool(ca.Cert), nil, x509.ExtKeyUsageServerAuth, now); err == nil {
		t.Fatal("a client certificate verified for serverAuth")
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	old, err := NewCA(rand.Reader, now.AddDate(-9, -11, 0), CARequest{CommonName: "old", KeyType: ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: old.Cert, Key: old.Key}
	s, err := IssueServer(rand.Reader, now, ca, ServerRequest{Names: []string{"a.example"}, KeyType: ECDSAP256, Days: 825})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("leaf ends %v, CA ends %v", s.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestBadInput(t *testing.T) {
	ca := newCA(t, ECDSAP256)
	tests := []struct {
		name  string
		req   ServerRequest
		field string
	}{
		{"space", ServerRequest{Names: []string{"my pi"}}, "--name"},
		{"empty label", ServerRequest{Names: []string{"pi..local"}}, "--name"},
		{"trailing dot", ServerRequest{Names: []string{"pi.local."}}, "--name"},
		{"leading dot", ServerRequest{Names: []string{".pi.local"}}, "--name"},
		{"empty", ServerRequest{Names: []string{""}}, "--name"},
		{"wildcard inside", ServerRequest{Names: []string{"a.*.example.org"}}, "--name"},
		{"partial wildcard", ServerRequest{Names: []string{"w*.example.org"}}, "--name"},
		{"bare wildcard tld", ServerRequest{Names: []string{"*.local"}}, "--name"},
		{"underscore", ServerRequest{Names: []string{"my_pi"}}, "--name"},
		{"hyphen edge", ServerRequest{Names: []string{"-pi.local"}}, "--name"},
		{"newline", ServerRequest{Names: []string{"pi\nlocal"}}, "--name"},
		{"long label", ServerRequest{Names: []string{strings.Repeat("a", 64) + ".local"}}, "--name"},
		{"numeric", ServerRequest{Names: []string{"12345"}}, "--name"},
		{"bad ip", ServerRequest{IPs: []string{"300.1.1.1"}}, "--ip"},
		{"name as ip", ServerRequest{IPs: []string{"pi.local"}}, "--ip"},
		{"no names", ServerRequest{}, "--name"},
		{"days 0", ServerRequest{Names: []string{"pi"}, Days: 0}, "--days"},
		{"days 826", ServerRequest{Names: []string{"pi"}, Days: 826}, "--days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.Days == 0 && tt.field != "--days" {
				tt.req.Days = 30
			}
			tt.req.KeyType = ECDSAP256
			_, err := IssueServer(rand.Reader, now, ca, tt.req)
			var ie *errs.InputError
			if !errors.As(err, &ie) || ie.Field != tt.field {
				t.Fatalf("got %v, want an input error on %s", err, tt.field)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
	for _, ok := range []string{"*.pi.example.org", "raspberrypi", "xn--bcher-kva.example", "a-b.c-d.local", "PI.Local"} {
		if err := ValidateDNSName("--name", ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a b", "+", "#", ".hidden", "-x", "a:b", strings.Repeat("x", 65)} {
		if err := ValidateClientName("NAME", bad); err == nil {
			t.Errorf("client name %q accepted", bad)
		}
	}
	if _, err := ParseKeyType("--key-type", "rsa-1024"); !errs.IsInput(err) {
		t.Errorf("rsa-1024: %v", err)
	}
	if _, err := NewCA(rand.Reader, now, CARequest{CommonName: "a\x07b", KeyType: ECDSAP256}); !errs.IsInput(err) {
		t.Errorf("control char in CA name: %v", err)
	}
}

func TestLoadCARefusesMismatchedKey(t *testing.T) {
	a, _ := NewCA(rand.Reader, now, CARequest{CommonName: "a", KeyType: ECDSAP256})
	b, _ := NewCA(rand.Reader, now, CARequest{CommonName: "b", KeyType: ECDSAP256})
	if _, err := LoadCA(a.CertPEM, b.KeyPEM); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("got %v", err)
	}
	leaf, _ := IssueServer(rand.Reader, now, &CA{Cert: a.Cert, Key: a.Key}, ServerRequest{Names: []string{"x.example"}, KeyType: ECDSAP256, Days: 1})
	if _, err := LoadCA(leaf.CertPEM, leaf.KeyPEM); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("leaf as CA: %v", err)
	}
}

func TestParsePrivateKeyForms(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, args string }{
		{"pkcs8-rsa", "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"},
		{"pkcs1-rsa", "genrsa -traditional 2048"},
		{"sec1-ec", "ecparam -name prime256v1 -genkey -noout"},
	} {
		out, err := exec.Command("openssl", strings.Fields(tc.args)...).Output()
		if err != nil {
			t.Fatalf("%s: openssl: %v", tc.name, err)
		}
		k, err := ParsePrivateKey(out)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		switch k.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey:
		default:
			t.Fatalf("%s: %T", tc.name, k)
		}
	}
	enc := filepath.Join(dir, "enc.pem")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:x", "-out", enc).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	data, _ := os.ReadFile(enc)
	if _, err := ParsePrivateKey(data); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("encrypted key: %v", err)
	}
}

func TestFingerprintMatchesOpenSSL(t *testing.T) {
	ca := newCA(t, ECDSAP256)
	f := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(f, EncodeCertificate(ca.Cert.Raw), 0o644)
	out, err := exec.Command("openssl", "x509", "-in", f, "-noout", "-fingerprint", "-sha256").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(out))
	want = want[strings.Index(want, "=")+1:]
	if got := Fingerprint(ca.Cert); got != want {
		t.Fatalf("fingerprint %s, openssl says %s", got, want)
	}
}

// TestCHeaderCompiles compiles the header with the C compiler and checks
// the string the program sees is exactly the PEM: the compiler, not our
// reading of C, judges the escaping.
func TestCHeaderCompiles(t *testing.T) {
	ca := newCA(t, ECDSAP256)
	h := CHeader(ca.Cert, "mqtt_ca_cert")
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Fatal("cc not found: apt-get install -y gcc")
	}
	dir := t.TempDir()
	src := string(h) + "#include <stdio.h>\nint main(void){fputs(mqtt_ca_cert, stdout);return 0;}\n"
	os.WriteFile(filepath.Join(dir, "m.c"), []byte(src), 0o644)
	if out, err := exec.Command(cc, "-Wall", "-Werror", "-o", filepath.Join(dir, "m"), filepath.Join(dir, "m.c")).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s\n%s", err, out, h)
	}
	out, err := exec.Command(filepath.Join(dir, "m")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, EncodeCertificate(ca.Cert.Raw)) {
		t.Fatalf("the C string is not the PEM:\n%s", out)
	}
}

func TestMissingAndDaysLeft(t *testing.T) {
	ca := newCA(t, ECDSAP256)
	s, _ := IssueServer(rand.Reader, now, ca, ServerRequest{Names: []string{"a.example", "10.0.0.1"}, KeyType: ECDSAP256, Days: 10})
	got := Missing(s.Cert, []string{"A.example", "b.example"}, []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2")})
	if diff := cmp.Diff([]string{"b.example", "10.0.0.2"}, got); diff != "" {
		t.Fatal(diff)
	}
	// Whole days: the 10 days began an hour ago (clockSkew).
	if d := DaysLeft(s.Cert, now); d != 9 {
		t.Fatalf("days left %d", d)
	}
	if d := DaysLeft(s.Cert, now.AddDate(0, 0, 11)); d >= 0 {
		t.Fatalf("expired cert has %d days left", d)
	}
}

// BenchmarkCAAndServer is the in-process cost of what `cert ca` plus
// `cert server` compute (bench/pki.sh compares the commands with openssl).
func BenchmarkCAAndServer(b *testing.B) {
	for _, kt := range []KeyType{RSA2048, ECDSAP256} {
		b.Run(string(kt), func(b *testing.B) {
			for b.Loop() {
				ca, err := NewCA(rand.Reader, now, CARequest{CommonName: "bench", KeyType: kt})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := IssueServer(rand.Reader, now, &CA{Cert: ca.Cert, Key: ca.Key}, ServerRequest{Names: []string{"raspberrypi.local"}, KeyType: kt, Days: ServerDays}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGenerateKey(b *testing.B) {
	for _, kt := range KeyTypes {
		b.Run(string(kt), func(b *testing.B) {
			for b.Loop() {
				if _, err := GenerateKey(rand.Reader, kt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The default CA name tells brokers apart and always fits a common name.
func TestDefaultCAName(t *testing.T) {
	long := strings.Repeat("a", 40) + "." + strings.Repeat("b", 40) + ".example"
	for host, want := range map[string]string{
		"pi.home.arpa":                 "mosqprov CA pi.home.arpa",
		"kitchen.":                     "mosqprov CA kitchen",
		"":                             "mosqprov CA",
		long:                           "mosqprov CA " + strings.Repeat("a", 40),
		strings.Repeat("c", 60) + ".x": "mosqprov CA",
	} {
		got := DefaultCAName(host)
		if got != want || ValidateCommonName("ca", got) != nil {
			t.Errorf("DefaultCAName(%q) = %q, want %q", host, got, want)
		}
	}
}
