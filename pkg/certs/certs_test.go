package certs

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// clock is a settable time for a System.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newSys is a Real System on a fresh root the broker's user can traverse
// (brokertest.Dir), so tests can hand the files to the real broker and try
// to read them as the mosquitto user.
func newSys(t *testing.T) (*system.Real, *clock) {
	t.Helper()
	c := &clock{t: time.Now().Truncate(time.Second)}
	return system.NewReal(brokertest.Dir(t), system.WithRunner(&system.Recorder{}), system.WithClock(c.now)), c
}

func mustCA(t *testing.T, sys system.System) {
	t.Helper()
	if _, err := EnsureCA(sys, CAOptions{Paths: DefaultPaths(), CommonName: "test CA", KeyType: pki.ECDSAP256}); err != nil {
		t.Fatal(err)
	}
}

func mustServer(t *testing.T, sys system.System, o ServerOptions) Result {
	t.Helper()
	o.Paths = DefaultPaths()
	if o.KeyType == "" {
		o.KeyType = pki.ECDSAP256
	}
	res, err := EnsureServer(sys, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// fileState is what a second run must not change.
type fileState struct {
	Mode     fs.FileMode
	UID, GID uint32
	Sum      [32]byte
	MTime    time.Time
}

// snapshot records every file and folder under root, after backdating
// mtimes so a rewrite of identical bytes would still show.
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			os.Chtimes(p, old, old)
		}
		s, err := stateOf(p)
		out[strings.TrimPrefix(p, root)] = s
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func stateOf(p string) (fileState, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return fileState{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	s := fileState{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid}
	if !fi.IsDir() {
		data, err := os.ReadFile(p)
		if err != nil {
			return s, err
		}
		s.Sum = sha256.Sum256(data)
		s.MTime = fi.ModTime()
	}
	return s, nil
}

func sameAfter(t *testing.T, root string, before map[string]fileState) {
	t.Helper()
	after := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		s, err := stateOf(p)
		after[strings.TrimPrefix(p, root)] = s
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("files changed (-before +after):\n%s", diff)
	}
}

func noChanges(t *testing.T, res Result) {
	t.Helper()
	for _, c := range res.Changes {
		if c.Changed {
			t.Errorf("second run changed %s %s (%s)", c.What, c.Path, c.Detail)
		}
	}
	if res.Need != system.NeedNothing {
		t.Errorf("second run needs %v", res.Need)
	}
}

type wantFile struct {
	path  string
	mode  fs.FileMode
	owner string
}

func checkOwners(t *testing.T, sys system.System, wants []wantFile) {
	t.Helper()
	for _, w := range wants {
		fi, err := sys.Stat(w.path)
		if err != nil {
			t.Errorf("%s: %v", w.path, err)
			continue
		}
		acct, err := sys.LookupUser(w.owner)
		if err != nil {
			t.Fatal(err)
		}
		gid, _ := sys.LookupGroup(w.owner)
		if fi.Mode != w.mode || fi.UID != acct.UID || fi.GID != gid {
			t.Errorf("%s: mode %04o uid %d gid %d, want %04o %s:%s", w.path, fi.Mode, fi.UID, fi.GID, w.mode, w.owner, w.owner)
		}
	}
}

func TestEnsureCAAndServerLayoutAndIdempotence(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	mustCA(t, sys)
	res := mustServer(t, sys, ServerOptions{Names: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	if res.Need != system.NeedReload {
		t.Fatalf("a new server certificate needs %v, want reload", res.Need)
	}
	res = mustServer(t, sys, ServerOptions{Names: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	noChanges(t, res)
	checkOwners(t, sys, []wantFile{
		{"/etc/mosqprov/ca", 0o700, "root"},
		{"/etc/mosqprov/ca/ca.key", 0o600, "root"},
		{"/etc/mosqprov/ca/ca.crt", 0o644, "root"},
		{"/etc/mosquitto/certs", 0o755, "root"},
		{"/etc/mosquitto/certs/ca.crt", 0o644, "root"},
		{"/etc/mosquitto/certs/server.crt", 0o644, "root"},
		{"/etc/mosquitto/certs/server.key", 0o600, "mosquitto"},
	})
	caCrt, _ := sys.ReadFile("/etc/mosqprov/ca/ca.crt")
	brokerCA, _ := sys.ReadFile("/etc/mosquitto/certs/ca.crt")
	if string(caCrt) != string(brokerCA) {
		t.Fatal("the broker's ca.crt is not the CA's")
	}

	// Another name and key type for an existing valid CA: kept.
	before := snapshot(t, sys.Root())
	r1, err := EnsureCA(sys, CAOptions{Paths: DefaultPaths(), CommonName: "another name", KeyType: pki.RSA4096})
	if err != nil {
		t.Fatal(err)
	}
	noChanges(t, r1)
	if len(r1.Warnings) != 1 || !strings.Contains(r1.Warnings[0].Text, "key is ecdsa-p256, not rsa-4096; it is kept") {
		t.Fatalf("a CA kept despite another --key-type must say so: %q", r1.Warnings)
	}
	noChanges(t, mustServer(t, sys, ServerOptions{Names: []string{"localhost"}, IPs: []string{"127.0.0.1"}}))
	sameAfter(t, sys.Root(), before)
	if err := runClient(sys, "dev1", false); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, sys.Root())
	if err := runClient(sys, "dev1", false); err != nil {
		t.Fatal(err)
	}
	sameAfter(t, sys.Root(), before)
	checkOwners(t, sys, []wantFile{
		{"/etc/mosqprov/clients/dev1", 0o700, "root"},
		{"/etc/mosqprov/clients/dev1/dev1.key", 0o600, "root"},
		{"/etc/mosqprov/clients/dev1/dev1.crt", 0o644, "root"},
		{"/etc/mosqprov/clients/dev1/ca.crt", 0o644, "root"},
	})
}

func runClient(sys system.System, name string, p12 bool) error {
	_, err := EnsureClient(sys, ClientOptions{Paths: DefaultPaths(), Name: name, KeyType: pki.ECDSAP256, RenewBefore: 30, P12: p12, Password: "correct horse"})
	return err
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test checks root-owned files and runs the broker as root; run it as root (CI does)")
	}
}

func TestSecondRunWritesNothing(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"pi.local", "localhost"}, IPs: []string{"192.168.1.10"}})
	if err := runClient(sys, "phone", true); err != nil {
		t.Fatal(err)
	}
	checkOwners(t, sys, []wantFile{
		{"/etc/mosqprov/clients", 0o700, "root"},
		{"/etc/mosqprov/clients/phone/phone.p12", 0o600, "root"},
		{"/etc/mosqprov/clients/phone/phone.key", 0o600, "root"},
	})
	before := snapshot(t, sys.Root())
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"pi.local", "localhost"}, IPs: []string{"192.168.1.10"}})
	// A subset of the names is still covered: kept.
	mustServer(t, sys, ServerOptions{Names: []string{"localhost"}})
	if err := runClient(sys, "phone", true); err != nil {
		t.Fatal(err)
	}
	if _, err := Renew(sys, RenewOptions{Paths: DefaultPaths(), RenewBefore: 30}); err != nil {
		t.Fatal(err)
	}
	sameAfter(t, sys.Root(), before)
}

func TestServerReissueReasons(t *testing.T) {
	requireRoot(t)
	sys, clk := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"pi.local"}})
	for _, tc := range []struct {
		name   string
		opts   ServerOptions
		before func()
		reason string
	}{
		{"new name", ServerOptions{Names: []string{"pi.local", "mqtt.home.arpa"}}, nil, "does not cover mqtt.home.arpa"},
		{"new ip", ServerOptions{Names: []string{"pi.local"}, IPs: []string{"10.1.2.3"}}, nil, "does not cover 10.1.2.3"},
		{"key type", ServerOptions{Names: []string{"pi.local"}, KeyType: pki.RSA2048}, nil, "key type ecdsa-p256, want rsa-2048"},
		{"due", ServerOptions{Names: []string{"pi.local"}, RenewBefore: 30, KeyType: pki.RSA2048}, func() { clk.t = clk.t.AddDate(0, 0, 800) }, "expires in"},
		{"expired", ServerOptions{Names: []string{"pi.local"}, KeyType: pki.RSA2048}, func() { clk.t = clk.t.AddDate(0, 0, 900) }, "expired on"},
		{"key swapped", ServerOptions{Names: []string{"pi.local"}, KeyType: pki.RSA2048}, func() {
			other, _ := pki.GenerateKey(rand.Reader, pki.RSA2048)
			pemKey, _ := pki.EncodePrivateKey(other)
			sys.WriteFile("/etc/mosquitto/certs/server.key", pemKey, system.Attr{Mode: 0o600})
		}, "the key does not match"},
		{"other CA", ServerOptions{Names: []string{"pi.local"}, KeyType: pki.RSA2048}, func() {
			if _, err := EnsureCA(sys, CAOptions{Paths: DefaultPaths(), CommonName: "new", KeyType: pki.ECDSAP256, Force: true}); err != nil {
				t.Fatal(err)
			}
		}, "not issued by this CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			res := mustServer(t, sys, tc.opts)
			var detail string
			for _, c := range res.Changes {
				if c.What == whatServerCert {
					detail = c.Detail
				}
			}
			if !strings.Contains(detail, tc.reason) {
				t.Fatalf("detail %q, want the reason %q", detail, tc.reason)
			}
			if res.Need != system.NeedReload {
				t.Fatalf("need %v", res.Need)
			}
		})
	}
}

// TestLeafEndingWithCAIsNotReissuedEveryRun: a leaf is capped at its CA's
// expiry, so near the CA's end a new one would be due at once; it is kept
// instead (and the CA's expiry is what status and renew report).
func TestLeafEndingWithCAIsNotReissuedEveryRun(t *testing.T) {
	requireRoot(t)
	sys, clk := newSys(t)
	clk.t = clk.t.AddDate(0, 0, -pki.CADays+10)
	mustCA(t, sys)
	clk.t = clk.t.AddDate(0, 0, pki.CADays-10)
	opts := ServerOptions{Names: []string{"pi.local"}, RenewBefore: 30}
	mustServer(t, sys, opts)
	if err := runClient(sys, "dev1", false); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, sys.Root())
	noChanges(t, mustServer(t, sys, opts))
	if err := runClient(sys, "dev1", false); err != nil {
		t.Fatal(err)
	}
	res, err := Renew(sys, RenewOptions{Paths: DefaultPaths(), RenewBefore: 30})
	if err != nil {
		t.Fatal(err)
	}
	noChanges(t, res)
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Text, "the CA expires in") {
		t.Fatalf("renew must warn about the CA: %q", res.Warnings)
	}
	sameAfter(t, sys.Root(), before)
	entries, _ := Status(sys, DefaultPaths(), 30)
	if !Failing(entries) || len(entries[0].Problems) == 0 {
		t.Fatalf("status must report the CA's expiry: %+v", entries[0])
	}
}

// TestBadInputWritesNothing: every refused input leaves the disk as it was.
func TestBadInputWritesNothing(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	if _, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), Names: []string{"pi"}}); !errs.IsInput(err) || !strings.Contains(err.Error(), "cert ca") {
		t.Fatalf("no CA: %v", err)
	}
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"pi.local"}})
	// A CA key that doesn't belong to ca.crt.
	other, _ := pki.GenerateKey(rand.Reader, pki.ECDSAP256)
	otherPEM, _ := pki.EncodePrivateKey(other)
	if _, err := sys.WriteFile("/etc/mosqprov/ca/ca.key", otherPEM, system.Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, sys.Root())
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"mismatched CA key", func() error {
			_, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), Names: []string{"new.name"}})
			return err
		}, "does not match"},
		{"mismatched CA kept", func() error {
			_, err := EnsureCA(sys, CAOptions{Paths: DefaultPaths(), CommonName: "x"})
			return err
		}, "--force"},
		{"bad name", func() error {
			_, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), Names: []string{"a..b"}})
			return err
		}, "--name"},
		{"bad ip", func() error {
			_, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), IPs: []string{"::g"}})
			return err
		}, "--ip"},
		{"days", func() error {
			_, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), Names: []string{"pi"}, Days: 10000})
			return err
		}, "--days"},
		{"renew window", func() error {
			_, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), Names: []string{"pi"}, Days: 30, RenewBefore: 30})
			return err
		}, "--renew-before"},
		{"client name", func() error {
			_, err := EnsureClient(sys, ClientOptions{Paths: DefaultPaths(), Name: "a/b"})
			return err
		}, "NAME"},
		{"ca name", func() error {
			_, err := EnsureCA(sys, CAOptions{Paths: DefaultPaths(), CommonName: "a\nb", Force: true})
			return err
		}, "--ca-name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if !errs.IsInput(err) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want a one-line input error mentioning %q", err, tc.want)
			}
		})
	}
	sameAfter(t, sys.Root(), before)
}

func TestUnreadableCAIsAnInputError(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	mustCA(t, sys)
	// Make the key a folder: reading it fails with something other than
	// "not found", as a permission problem would for a non-root caller.
	host := sys.HostPath("/etc/mosqprov/ca/ca.key")
	os.Remove(host)
	os.Mkdir(host, 0o700)
	_, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), Names: []string{"pi"}})
	if !errs.IsInput(err) || !strings.Contains(err.Error(), "can't read the CA key") {
		t.Fatalf("got %v", err)
	}
}

func TestCAForceReplacesAndWarns(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	mustCA(t, sys)
	old, _ := sys.ReadFile("/etc/mosqprov/ca/ca.crt")
	res, err := EnsureCA(sys, CAOptions{Paths: DefaultPaths(), CommonName: "new", KeyType: pki.ECDSAP256, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	now, _ := sys.ReadFile("/etc/mosqprov/ca/ca.crt")
	if string(old) == string(now) {
		t.Fatal("--force kept the old CA")
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Text, "every device") {
		t.Fatalf("warnings %q", res.Warnings)
	}
}

// TestCAFinishedAfterInterruptedCreation: a CA key without its certificate
// is finished with that key, unless the broker's copy of ca.crt shows that
// devices trust a CA with another key: then nothing is replaced silently.
func TestCAFinishedAfterInterruptedCreation(t *testing.T) {
	requireRoot(t)
	p := DefaultPaths()
	// keyOnly leaves the CA key without its certificate, after issuing a
	// server certificate (which copies ca.crt to the broker) when asked.
	keyOnly := func(t *testing.T, server bool) (*system.Real, []byte) {
		sys, _ := newSys(t)
		mustCA(t, sys)
		if server {
			mustServer(t, sys, ServerOptions{Names: []string{"localhost"}})
		}
		if _, err := sys.Remove(p.CACert); err != nil {
			t.Fatal(err)
		}
		key, _ := sys.ReadFile(p.CAKey)
		return sys, key
	}
	t.Run("key only", func(t *testing.T) {
		sys, key := keyOnly(t, false)
		res, err := EnsureCA(sys, CAOptions{Paths: p, CommonName: "test CA", KeyType: pki.RSA2048})
		if err != nil {
			t.Fatal(err)
		}
		ca, err := LoadCA(sys, p)
		if err != nil {
			t.Fatalf("the finished CA doesn't load: %v", err)
		}
		if got, _ := sys.ReadFile(p.CAKey); string(got) != string(key) || pki.KeyTypeOf(ca.Cert.PublicKey) != pki.ECDSAP256 {
			t.Fatal("the CA was finished with a new key, not the one on disk")
		}
		if c := changeFor(res, p.CAKey); c.Changed {
			t.Fatalf("the key was rewritten: %+v", c)
		}
		if c := changeFor(res, p.CACert); !c.Changed || !strings.Contains(c.Detail, "finished with the existing") {
			t.Fatalf("change %+v", c)
		}
		noChanges(t, must(t)(EnsureCA(sys, CAOptions{Paths: p, CommonName: "test CA"})))
	})
	t.Run("broker copy of the same CA", func(t *testing.T) {
		sys, _ := keyOnly(t, true)
		trusted, _ := sys.ReadFile(p.BrokerCA)
		res, err := EnsureCA(sys, CAOptions{Paths: p, CommonName: "another name"})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := sys.ReadFile(p.CACert); string(got) != string(trusted) {
			t.Fatal("ca.crt is not the certificate devices already trust")
		}
		if c := changeFor(res, p.CACert); !strings.Contains(c.Detail, "restored from") {
			t.Fatalf("change %+v", c)
		}
		noChanges(t, mustServer(t, sys, ServerOptions{Names: []string{"localhost"}}))
	})
	t.Run("broker copy of another CA", func(t *testing.T) {
		sys, _ := keyOnly(t, true)
		other, _ := pki.GenerateKey(rand.Reader, pki.ECDSAP256)
		otherPEM, _ := pki.EncodePrivateKey(other)
		sys.WriteFile(p.CAKey, otherPEM, system.Attr{Mode: 0o600})
		before := snapshot(t, sys.Root())
		_, err := EnsureCA(sys, CAOptions{Paths: p, CommonName: "test CA"})
		if !errs.IsInput(err) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), p.BrokerCA) {
			t.Fatalf("got %v, want an input error naming the broker's CA and --force", err)
		}
		sameAfter(t, sys.Root(), before)
	})
	t.Run("unreadable key", func(t *testing.T) {
		sys, _ := keyOnly(t, false)
		sys.WriteFile(p.CAKey, []byte("not a key\n"), system.Attr{Mode: 0o600})
		before := snapshot(t, sys.Root())
		_, err := EnsureCA(sys, CAOptions{Paths: p, CommonName: "test CA"})
		if !errs.IsInput(err) || !strings.Contains(err.Error(), p.CAKey) || strings.Contains(err.Error(), "first") {
			t.Fatalf("got %v, want an input error about the key", err)
		}
		sameAfter(t, sys.Root(), before)
	})
}

func changeFor(res Result, path string) system.Change {
	for _, c := range res.Changes {
		if c.Path == path {
			return c
		}
	}
	return system.Change{}
}

func must(t *testing.T) func(Result, error) Result {
	return func(r Result, err error) Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

type fakeHost struct {
	name  string
	addrs []net.IP
}

func (h fakeHost) Hostname() (string, error) { return h.name, nil }
func (h fakeHost) Addrs() ([]net.IP, error)  { return h.addrs, nil }

func TestDefaultNames(t *testing.T) {
	names, ips, err := DefaultNames(fakeHost{"RaspberryPi", []net.IP{net.ParseIP("192.168.1.10"), net.ParseIP("2001:db8::5")}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"raspberrypi", "raspberrypi.local", "localhost"}, names); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"127.0.0.1", "::1", "192.168.1.10", "2001:db8::5"}, ips); diff != "" {
		t.Error(diff)
	}
	names, _, _ = DefaultNames(fakeHost{name: "pi.example.org"})
	if diff := cmp.Diff([]string{"pi.example.org", "pi", "pi.local", "localhost"}, names); diff != "" {
		t.Error(diff)
	}
	if _, _, err := DefaultNames(fakeHost{name: "my_pi"}); !errs.IsInput(err) {
		t.Errorf("bad hostname: %v", err)
	}
	// The live host's own addresses never include loopback or link-local.
	addrs, err := system.NewReal("/").Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IsLoopback() || a.IsLinkLocalUnicast() {
			t.Errorf("address %s", a)
		}
	}
}

func TestStatus(t *testing.T) {
	requireRoot(t)
	sys, clk := newSys(t)
	entries, err := Status(sys, DefaultPaths(), 30)
	if err != nil || Failing(entries) || len(entries) != 2 || entries[0].Present || entries[1].Present {
		t.Fatalf("nothing set up: %+v %v", entries, err)
	}
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"pi.local"}, IPs: []string{"10.0.0.2"}})
	if err := runClient(sys, "dev1", false); err != nil {
		t.Fatal(err)
	}
	entries, err = Status(sys, DefaultPaths(), 30)
	if err != nil {
		t.Fatal(err)
	}
	if Failing(entries) || len(entries) != 3 {
		t.Fatalf("fresh: %+v", entries)
	}
	srv := entries[1]
	if !srv.ChainOK || !srv.KeyMatches || !srv.FilesOK || srv.KeyType != "ecdsa-p256" || srv.DaysLeft != 824 ||
		strings.Join(srv.SANs, " ") != "pi.local 10.0.0.2" || srv.Subject != "CN=pi.local" {
		t.Fatalf("server entry: %+v", srv)
	}
	if entries[2].Label() != "client dev1" || !entries[2].ChainOK {
		t.Fatalf("client entry: %+v", entries[2])
	}

	// --warn catches what expires within it.
	entries, _ = Status(sys, DefaultPaths(), 826)
	if !Failing(entries) || !strings.Contains(strings.Join(entries[1].Problems, ";"), "expires in 824 days") {
		t.Fatalf("warn 826: %+v", entries[1].Problems)
	}
	clk.t = clk.t.AddDate(0, 0, 830)
	entries, _ = Status(sys, DefaultPaths(), 30)
	if !strings.Contains(strings.Join(entries[1].Problems, ";"), "expired on") || entries[1].ChainOK {
		t.Fatalf("expired: %+v", entries[1])
	}
	clk.t = clk.t.AddDate(0, 0, -830)

	// A CA key others can read, and a server key that isn't the certificate's.
	os.Chmod(sys.HostPath("/etc/mosqprov/ca/ca.key"), 0o644)
	other, _ := pki.GenerateKey(rand.Reader, pki.ECDSAP256)
	otherPEM, _ := pki.EncodePrivateKey(other)
	sys.WriteFile("/etc/mosquitto/certs/server.key", otherPEM, system.Attr{Mode: 0o600, User: "mosquitto", Group: "mosquitto"})
	entries, _ = Status(sys, DefaultPaths(), 30)
	if entries[0].FilesOK || !strings.Contains(strings.Join(entries[0].Problems, ";"), "ca.key: mode 0644, want 0600") {
		t.Fatalf("ca: %+v", entries[0])
	}
	if entries[1].KeyMatches || !strings.Contains(strings.Join(entries[1].Problems, ";"), "does not match") {
		t.Fatalf("server: %+v", entries[1])
	}
}

func TestRenewReissuesDueCertificates(t *testing.T) {
	requireRoot(t)
	sys, clk := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"pi.local", "localhost"}, IPs: []string{"10.0.0.2"}, KeyType: pki.RSA2048})
	if err := runClient(sys, "dev1", true); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := sys.ReadFile("/etc/mosqprov/ca/ca.crt")
	clk.t = clk.t.AddDate(0, 0, 810)
	res, err := Renew(sys, RenewOptions{Paths: DefaultPaths(), RenewBefore: 30})
	if err != nil {
		t.Fatal(err)
	}
	if res.Need.String() != "reload" {
		t.Fatalf("need %v", res.Need)
	}
	srvPEM, _ := sys.ReadFile("/etc/mosquitto/certs/server.crt")
	srv, _ := pki.ParseCertificate(srvPEM)
	// 825 days from an hour back (clock skew): 824 whole days left.
	if pki.DaysLeft(srv, clk.t) != 824 || srv.Subject.CommonName != "pi.local" || strings.Join(pki.SANs(srv), " ") != "pi.local localhost 10.0.0.2" || pki.KeyTypeOf(srv.PublicKey) != pki.RSA2048 {
		t.Fatalf("renewed server: CN %s SANs %v %s, %d days", srv.Subject.CommonName, pki.SANs(srv), pki.KeyTypeOf(srv.PublicKey), pki.DaysLeft(srv, clk.t))
	}
	cliPEM, _ := sys.ReadFile("/etc/mosqprov/clients/dev1/dev1.crt")
	cli, _ := pki.ParseCertificate(cliPEM)
	if pki.DaysLeft(cli, clk.t) != 824 || pki.KeyTypeOf(cli.PublicKey) != pki.ECDSAP256 {
		t.Fatalf("renewed client: %d days, %s", pki.DaysLeft(cli, clk.t), pki.KeyTypeOf(cli.PublicKey))
	}
	if caAfter, _ := sys.ReadFile("/etc/mosqprov/ca/ca.crt"); string(caAfter) != string(caBefore) {
		t.Fatal("renew replaced the CA")
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Text, "dev1.p12") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	entries, _ := Status(sys, DefaultPaths(), 30)
	if Failing(entries) {
		t.Fatalf("after renew: %+v", entries)
	}
}

// TestExportWithoutRoot: a user who can't open the root-only CA folder
// still gets the CA certificate, from the broker's public copy.
func TestExportWithoutRoot(t *testing.T) {
	requireRoot(t)
	sys, _ := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"localhost"}})
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Run TestExportHelper in this test binary as the nobody user.
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", bin, "-test.run=^TestExportHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "MOSQPROV_EXPORT_CHILD=1", "MOSQPROV_EXPORT_ROOT="+sys.Root())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "exported CN=test CA") {
		t.Fatalf("export as nobody: %v\n%s", err, out)
	}
}

// TestExportHelper is TestExportWithoutRoot's child; alone it does nothing.
func TestExportHelper(t *testing.T) {
	root := os.Getenv("MOSQPROV_EXPORT_ROOT")
	if os.Getenv("MOSQPROV_EXPORT_CHILD") == "" || root == "" {
		t.Skip("run by TestExportWithoutRoot")
	}
	sys := system.NewReal(root)
	if _, err := sys.ReadFile("/etc/mosqprov/ca/ca.crt"); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("the CA folder is readable as %d: %v", os.Getuid(), err)
	}
	e, err := Export(sys, DefaultPaths(), FormatPEM)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("exported " + e.Subject)
}

// A reissue without a key type keeps the one on disk (README: "the type is
// kept"), for server and client certificates alike: a new name on an
// ecdsa-p256 server certificate does not turn its key into rsa-2048.
func TestReissueKeepsKeyType(t *testing.T) {
	sys, _ := newSys(t)
	mustCA(t, sys)
	mustServer(t, sys, ServerOptions{Names: []string{"pi.local"}, KeyType: pki.ECDSAP256})
	if _, err := EnsureServer(sys, ServerOptions{Paths: DefaultPaths(), Names: []string{"pi.local", "mqtt.home.arpa"}}); err != nil {
		t.Fatal(err)
	}
	data, err := sys.ReadFile(DefaultPaths().ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.ParseCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DNSNames) != 2 || pki.KeyTypeOf(c.PublicKey) != pki.ECDSAP256 {
		t.Fatalf("reissued with names %v and key %s, want the new name and ecdsa-p256", c.DNSNames, pki.KeyTypeOf(c.PublicKey))
	}

	if _, err := EnsureClient(sys, ClientOptions{Paths: DefaultPaths(), Name: "phone", KeyType: pki.ECDSAP384, Days: 10}); err != nil {
		t.Fatal(err)
	}
	// 10 days left is inside the renewal window, so it is reissued.
	res, err := EnsureClient(sys, ClientOptions{Paths: DefaultPaths(), Name: "phone", Days: 365, RenewBefore: 20})
	if err != nil || !res.Changed() {
		t.Fatalf("not reissued: %v %+v", err, res)
	}
	data, err = sys.ReadFile(ClientFilesIn(path.Join(DefaultPaths().ClientDir, "phone"), "phone").Cert)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = pki.ParseCertificate(data); err != nil {
		t.Fatal(err)
	}
	if pki.KeyTypeOf(c.PublicKey) != pki.ECDSAP384 {
		t.Fatalf("client reissued with %s, want ecdsa-p384", pki.KeyTypeOf(c.PublicKey))
	}
}
