package pki

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// openssl is a peer nobody here wrote: it judges the certificates.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

func TestOpenSSLJudges(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found: apt-get install -y openssl")
	}
	for _, kt := range []KeyType{RSA2048, ECDSAP256, ECDSAP384} {
		t.Run(string(kt), func(t *testing.T) {
			dir := t.TempDir()
			ca := newCA(t, kt)
			srv, err := IssueServer(rand.Reader, now, ca, ServerRequest{
				Names: []string{"raspberrypi", "raspberrypi.local", "localhost"}, IPs: []string{"192.168.1.10", "::1"},
				KeyType: kt, Days: ServerDays,
			})
			if err != nil {
				t.Fatal(err)
			}
			cli, err := IssueClient(rand.Reader, now, ca, ClientRequest{Name: "phone", KeyType: kt, Days: 100})
			if err != nil {
				t.Fatal(err)
			}
			write := func(name string, data []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			caFile := write("ca.crt", EncodeCertificate(ca.Cert.Raw))
			srvFile := write("server.crt", srv.CertPEM)
			keyFile := write("server.key", srv.KeyPEM)
			cliFile := write("client.crt", cli.CertPEM)
			at := []string{"-attime", "1795700000"} // 2026-11-26, inside every validity

			if out, err := openssl(t, append([]string{"verify", "-CAfile", caFile, "-purpose", "sslserver", "-x509_strict"}, append(at, srvFile)...)...); err != nil || !strings.Contains(out, ": OK") {
				t.Fatalf("openssl verify server: %v\n%s", err, out)
			}
			if out, err := openssl(t, append([]string{"verify", "-CAfile", caFile, "-purpose", "sslclient", "-x509_strict"}, append(at, cliFile)...)...); err != nil || !strings.Contains(out, ": OK") {
				t.Fatalf("openssl verify client: %v\n%s", err, out)
			}
			if out, _ := openssl(t, append([]string{"verify", "-CAfile", caFile, "-purpose", "sslserver"}, append(at, cliFile)...)...); strings.Contains(out, ": OK") {
				t.Fatalf("a client certificate passed as a server one:\n%s", out)
			}
			for _, h := range []string{"raspberrypi", "raspberrypi.local", "localhost"} {
				out, err := openssl(t, "x509", "-in", srvFile, "-noout", "-checkhost", h)
				if err != nil || !strings.Contains(out, "does match") {
					t.Errorf("checkhost %s: %v %s", h, err, out)
				}
			}
			for _, ip := range []string{"192.168.1.10", "::1"} {
				out, err := openssl(t, "x509", "-in", srvFile, "-noout", "-checkip", ip)
				if err != nil || !strings.Contains(out, "does match") {
					t.Errorf("checkip %s: %v %s", ip, err, out)
				}
			}
			if out, _ := openssl(t, "x509", "-in", srvFile, "-noout", "-checkhost", "evil.local"); !strings.Contains(out, "does NOT match") {
				t.Errorf("checkhost evil.local: %s", out)
			}
			if out, _ := openssl(t, "x509", "-in", srvFile, "-noout", "-checkip", "192.168.1.11"); !strings.Contains(out, "does NOT match") {
				t.Errorf("checkip 192.168.1.11: %s", out)
			}
			// The key is the certificate's: openssl compares the public halves.
			a, err1 := openssl(t, "x509", "-in", srvFile, "-noout", "-pubkey")
			b, err2 := openssl(t, "pkey", "-in", keyFile, "-pubout")
			if err1 != nil || err2 != nil || a != b {
				t.Errorf("public keys differ: %v %v\n%s\n%s", err1, err2, a, b)
			}
			text, _ := openssl(t, "x509", "-in", caFile, "-noout", "-text")
			for _, want := range []string{"CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign", "X509v3 Basic Constraints: critical", "Subject Key Identifier"} {
				if !strings.Contains(text, want) {
					t.Errorf("CA lacks %q:\n%s", want, text)
				}
			}
		})
	}
}
