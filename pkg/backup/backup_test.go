package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/backup"
	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// newRoot is a target root with this machine's accounts (brokertest.Root).
func newRoot(t *testing.T) string { return brokertest.Root(t) }

func sys(root string) *system.Real {
	return system.NewReal(root, system.WithRunner(&system.Recorder{}))
}

// A broker set up by mosqprov, backed up, restored on a fresh card: the
// real broker accepts the old user's password and the old client's
// certificate, and a following apply changes nothing.
func TestRestoredBrokerAcceptsOldClients(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	ctx := context.Background()
	port := brokertest.FreePort(t)
	dir := t.TempDir()
	specFile := filepath.Join(dir, "broker.yaml")
	os.WriteFile(specFile, []byte(fmt.Sprintf(`hostname: localhost
ips: [127.0.0.1]
tls: {key_type: ecdsa-p256}
listeners:
  - {type: mqtts, port: %d, bind: 127.0.0.1}
users:
  - {name: sensor1, password_env: SENSOR_PW}
acl:
  - {user: sensor1, readwrite: ["home/#"]}
`, port)), 0o644)
	opts := plan.Options{LookupEnv: func(k string) (string, bool) {
		if k == "SENSOR_PW" {
			return "sensor-password-1", true
		}
		return "", false
	}}
	load := func(root string) *spec.Spec {
		s, err := spec.Load(sys(root), specFile)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	old := newRoot(t)
	if _, err := plan.Converge(ctx, sys(old), load(old), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.EnsureClient(sys(old), certs.ClientOptions{Paths: certs.DefaultPaths(), Name: "device1", KeyType: "ecdsa-p256"}); err != nil {
		t.Fatal(err)
	}

	archive, err := backup.Collect(sys(old), false)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := archive.Seal(id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	opened, err := backup.Open(bytes.NewReader(sealed), id)
	if err != nil {
		t.Fatal(err)
	}

	fresh := newRoot(t)
	if _, err := opened.Restore(sys(fresh)); err != nil {
		t.Fatal(err)
	}
	res, err := plan.Converge(ctx, sys(fresh), load(fresh), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed {
		t.Fatalf("apply after restore changes %s", res.Summary)
	}

	// The restored files, as the broker reads them, with the clients'
	// certificates required so the old client's certificate is checked too.
	confData, err := os.ReadFile(filepath.Join(fresh, layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(confData), " /etc/mosquitto/", " "+fresh+"/etc/mosquitto/")
	conf = strings.Replace(conf, "tls_version", "require_certificate true\ntls_version", 1)
	brokertest.Start(t, fresh, conf, port)

	client := filepath.Join(fresh, layout.ClientDir, "device1")
	tls := []string{"--cafile", filepath.Join(fresh, layout.BrokerCACert), "--cert", filepath.Join(client, "device1.crt"), "--key", filepath.Join(client, "device1.key")}
	good := brokertest.Client{Port: port, User: "sensor1", Password: "sensor-password-1", Extra: tls}
	if ok, err := brokertest.Roundtrip(good, good, "home/restored", "hello"); !ok || err != nil {
		t.Fatalf("the old user with the old client certificate: delivered=%v %v", ok, err)
	}
	wrong := good
	wrong.Password = "not-the-password"
	if err := wrong.Publish("home/restored", "x"); err == nil {
		t.Fatal("a wrong password was accepted: the test proves nothing")
	}
	noCert := good
	noCert.Extra = tls[:2]
	if err := noCert.Publish("home/restored", "x"); err == nil {
		t.Fatal("a client without a certificate was accepted: require_certificate is not in effect")
	}
}

// Every way an archive can be damaged is refused by Open, before anything
// could be written: each single flipped byte in a sample across the file,
// every cut length in a sample, and another recipient's key.
func TestOpenRefusesDamage(t *testing.T) {
	root := newRoot(t)
	s := sys(root)
	if _, err := s.EnsureDir(layout.StateDir, system.Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteFile(layout.Spec, []byte("hostname: x\n"), system.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureDir(layout.MosquittoDir, system.Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteFile(layout.PasswordFile, []byte("a:$7$101$x$y\n"), system.Attr{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	archive, err := backup.Collect(s, false)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	sealed, err := archive.Seal(id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Open(bytes.NewReader(sealed), id); err != nil {
		t.Fatalf("the intact archive: %v", err)
	}
	for i := 0; i < len(sealed); i += 1 + len(sealed)/97 {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x20
		if _, err := backup.Open(bytes.NewReader(bad), id); err == nil {
			t.Fatalf("byte %d flipped: opened", i)
		}
	}
	for cut := 1; cut < len(sealed); cut += 1 + len(sealed)/53 {
		if _, err := backup.Open(bytes.NewReader(sealed[:len(sealed)-cut]), id); err == nil {
			t.Fatalf("cut by %d bytes: opened", cut)
		}
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := backup.Open(bytes.NewReader(sealed), other); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("another key: %v", err)
	}
}

// An archive that decrypts but lists a path outside mosqprov's folders, an
// owner other than root or mosquitto, a special mode, or a member that does
// not match its digest is refused whole.
func TestUnmarshalRefusesCraftedArchives(t *testing.T) {
	good := func() *backup.Archive {
		data := []byte("hostname: x\n")
		a := &backup.Archive{Data: map[string][]byte{layout.Spec: data}}
		a.Manifest = backup.Manifest{Format: backup.Format, Created: "2026-12-03T00:00:00Z", Entries: []backup.Entry{
			{Path: layout.StateDir, Dir: true, Mode: 0o755, User: "root", Group: "root"},
			{Path: layout.Spec, Mode: 0o644, User: "root", Group: "root", Size: int64(len(data)), SHA256: sha(data)},
		}}
		return a
	}
	roundtrip := func(a *backup.Archive) error {
		var buf bytes.Buffer
		if err := a.Marshal(&buf); err != nil {
			t.Fatal(err)
		}
		_, err := backup.Unmarshal(&buf)
		return err
	}
	if err := roundtrip(good()); err != nil {
		t.Fatalf("a good archive: %v", err)
	}
	for name, spoil := range map[string]func(a *backup.Archive){
		"outside": func(a *backup.Archive) {
			a.Manifest.Entries[1].Path = "/etc/shadow"
			a.Data["/etc/shadow"] = a.Data[layout.Spec]
		},
		"dot-dot":      func(a *backup.Archive) { a.Manifest.Entries[1].Path = "/etc/mosqprov/../shadow" },
		"owner":        func(a *backup.Archive) { a.Manifest.Entries[1].User = "pi" },
		"setuid":       func(a *backup.Archive) { a.Manifest.Entries[1].Mode = 0o4755 },
		"digest":       func(a *backup.Archive) { a.Data[layout.Spec] = []byte("hostname: y\n") },
		"missing":      func(a *backup.Archive) { delete(a.Data, layout.Spec); a.Manifest.Entries[1].Size = 0 },
		"format":       func(a *backup.Archive) { a.Manifest.Format = 2 },
		"listed-twice": func(a *backup.Archive) { a.Manifest.Entries = append(a.Manifest.Entries, a.Manifest.Entries[1]) },
	} {
		a := good()
		spoil(a)
		if err := roundtrip(a); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A managed file that is a symlink is refused by name, never followed.
func TestCollectRefusesSymlinks(t *testing.T) {
	root := newRoot(t)
	s := sys(root)
	if _, err := s.EnsureDir(layout.StateDir, system.Attr{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(root, layout.Spec)); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Collect(s, false); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("a symlinked broker.yaml: %v", err)
	}
}

func sha(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Everything a rebuild needs is in the archive, the bridges' TLS files and
// mosqprov's other conf.d files included, and nothing of the broker's
// own that mosqprov did not write.
func TestCollectTakesEveryManagedFile(t *testing.T) {
	root := newRoot(t)
	s := sys(root)
	files := map[string]string{
		layout.Spec:         "hostname: x\n",
		layout.CAKey:        "key",
		layout.PasswordFile: "a:$7$101$x$y\n",
		layout.DropIn:       "listener 1883\n",
		"/etc/mosquitto/conf.d/mosqprov-bridges.conf": "connection hub\n",
		bridge.Dir + "/hub/ca.crt":                    "ca",
		"/etc/mosquitto/conf.d/local.conf":            "log_type all\n",
		layout.MosquittoConf:                          "include_dir /etc/mosquitto/conf.d\n",
	}
	for p, data := range files {
		if _, err := s.EnsureDir(filepath.Dir(p), system.Attr{Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteFile(p, []byte(data), system.Attr{Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := backup.Collect(s, false)
	if err != nil {
		t.Fatal(err)
	}
	for p := range files {
		_, in := a.Data[p]
		want := p != "/etc/mosquitto/conf.d/local.conf" && p != layout.MosquittoConf
		if in != want {
			t.Errorf("%s in the archive: %v, want %v", p, in, want)
		}
	}
}
