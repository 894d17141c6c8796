// Package ansible holds the mosqprov.mosquitto Ansible collection
// (ansible_collections/mosqprov/mosquitto) and its tests, which run it for
// real with Debian's ansible-core.
package ansible

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const testVersion = "9.9.9"

var hosts = []string{"pi-kitchen", "pi-garage"}

// fleet is a test's two-host inventory: both hosts are this machine, each
// with its own --root and its own mosqprov, installed by the collection's
// role from a release folder the test builds.
type fleet struct {
	t        *testing.T
	dir      string // test_dir: release/, secrets.yml, <host>/{bin,root}
	password string
	outputs  []string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Fatal("ansible-playbook not found: install it with `apt-get install -y ansible-core` (the README's test command does)")
	}
	f := &fleet{t: t, dir: t.TempDir(), password: "device-" + randomHex(t)}
	f.release()
	if err := os.WriteFile(filepath.Join(f.dir, "secrets.yml"), []byte("mqtt_device_password: "+f.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func randomHex(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// release lays out what a mosqprov release publishes for amd64 hosts: the
// archive with the binary at its top and checksums.txt.
func (f *fleet) release() {
	t := f.t
	dir := filepath.Join(f.dir, "release")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mosqprov")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X github.com/mosqprov/mosqprov/pkg/cli.version="+testVersion, "-o", bin, "../cmd/mosqprov")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	name := fmt.Sprintf("mosqprov_%s_linux_amd64.tar.gz", testVersion)
	archive := filepath.Join(dir, name)
	writeTarGz(t, archive, bin)
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	checksums := hex.EncodeToString(sum[:]) + "  " + name + "\n"
	if err := os.WriteFile(filepath.Join(dir, "checksums.txt"), []byte(checksums), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeTarGz(t *testing.T, path, bin string) {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "mosqprov", Mode: 0o755, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

// play runs testdata/site.yml against the inventory in inventory with
// -v, and returns its output and exit code.
func (f *fleet) play(inventory string, args ...string) (string, int) {
	t := f.t
	t.Helper()
	argv := append([]string{"-v", "-i", inventory, "testdata/site.yml",
		"-e", "test_dir=" + f.dir, "-e", "mosqprov_version=" + testVersion,
		"-e", "@" + filepath.Join(f.dir, "secrets.yml")}, args...)
	cmd := exec.Command("ansible-playbook", argv...)
	wd, _ := os.Getwd()
	cmd.Env = append(os.Environ(), "ANSIBLE_COLLECTIONS_PATH="+wd, "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_HOST_KEY_CHECKING=0", "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_REMOTE_TEMP="+t.TempDir(),
		"ANSIBLE_RETRY_FILES_ENABLED=0")
	out, err := cmd.CombinedOutput()
	f.outputs = append(f.outputs, string(out))
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ansible-playbook: %v", err)
	}
	return string(out), code
}

// recap is each host's PLAY RECAP counts.
func recap(t *testing.T, out string) map[string]map[string]string {
	t.Helper()
	line := regexp.MustCompile(`(?m)^(\S+)\s*:\s*(ok=\d+.*)$`)
	kv := regexp.MustCompile(`(\w+)=(\d+)`)
	got := map[string]map[string]string{}
	for _, m := range line.FindAllStringSubmatch(out, -1) {
		counts := map[string]string{}
		for _, p := range kv.FindAllStringSubmatch(m[2], -1) {
			counts[p[1]] = p[2]
		}
		got[m[1]] = counts
	}
	for _, h := range hosts {
		if got[h] == nil {
			t.Fatalf("no PLAY RECAP line for %s:\n%s", h, out)
		}
	}
	return got
}

// files lists every file under dir (relative), or none when it is missing.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var list []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			list = append(list, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestCollectionTwoHosts is the reviewer's and the operator's day with two
// brokers in one inventory: install, --check --diff, a real run, a second
// run, then a bad spec on one host.
func TestCollectionTwoHosts(t *testing.T) {
	f := newFleet(t)
	inventory := "testdata/inventory"

	// The role installs each host's mosqprov, once.
	out, code := f.play(inventory, "--tags", "install")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	for h, c := range recap(t, out) {
		if c["failed"] != "0" || c["changed"] == "0" {
			t.Fatalf("install on %s: %v\n%s", h, c, out)
		}
	}
	for _, h := range hosts {
		v, err := exec.Command(filepath.Join(f.dir, h, "bin", "mosqprov"), "version").Output()
		if err != nil || !strings.HasPrefix(string(v), "mosqprov "+testVersion+" ") {
			t.Fatalf("%s's installed mosqprov: %q %v", h, v, err)
		}
	}

	// --check --diff: each host's plan, masked, and nothing written.
	out, code = f.play(inventory, "--check", "--diff")
	if code != 0 {
		t.Fatalf("--check --diff: exit %d\n%s", code, out)
	}
	for h, c := range recap(t, out) {
		if c["failed"] != "0" || c["changed"] == "0" {
			t.Fatalf("--check --diff on %s: %v\n%s", h, c, out)
		}
	}
	for _, want := range []string{
		"+subject: CN=pi-kitchen.local", "+subject: CN=pi-garage.local",
		"+names: pi-kitchen.local 192.168.1.50", "+names: pi-garage.local 192.168.1.51",
		"+kitchen-lights:$7$(hash masked)", "+garage-door:$7$(hash masked)",
		"+listener 8883", "/etc/mosquitto/certs/server.key: private key, content not shown",
		"+++ after: " + filepath.Join(f.dir, "pi-garage", "root", "etc/mosqprov/broker.yaml"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--check --diff output lacks %q", want)
		}
	}
	for _, h := range hosts {
		if got := files(t, filepath.Join(f.dir, h, "root")); len(got) > 0 {
			t.Fatalf("--check wrote into %s's root: %v", h, got)
		}
	}
	if t.Failed() {
		t.Fatalf("output:\n%s", out)
	}

	// A real run converges both; the second reports changed=0 for both.
	out, code = f.play(inventory)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	for h, c := range recap(t, out) {
		if c["failed"] != "0" || c["changed"] == "0" {
			t.Fatalf("apply on %s: %v\n%s", h, c, out)
		}
	}
	for _, h := range hosts {
		root := filepath.Join(f.dir, h, "root")
		for _, p := range []string{"etc/mosqprov/broker.yaml", "etc/mosquitto/passwd", "etc/mosquitto/conf.d/mosqprov.conf", "etc/mosquitto/certs/server.crt"} {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Fatalf("apply on %s: %v", h, err)
			}
		}
	}
	spec, _ := os.ReadFile(filepath.Join(f.dir, "pi-garage", "root", "etc/mosqprov/broker.yaml"))
	if !strings.Contains(string(spec), "hostname: pi-garage.local") {
		t.Fatalf("pi-garage's broker.yaml is not its own:\n%s", spec)
	}
	out, code = f.play(inventory, "--diff")
	if code != 0 {
		t.Fatalf("second apply: exit %d\n%s", code, out)
	}
	for h, c := range recap(t, out) {
		if c["failed"] != "0" || c["changed"] != "0" {
			t.Fatalf("second apply on %s is not changed=0: %v\n%s", h, c, out)
		}
	}

	// A bad spec fails its host only, with mosqprov's message, and changes
	// nothing there (its broker.yaml included).
	bad := filepath.Join(t.TempDir(), "inventory")
	copyDir(t, inventory, bad)
	if err := os.WriteFile(filepath.Join(bad, "host_vars", "pi-garage.yml"),
		[]byte("broker_hostname: pi-garage.local\nbroker_ips: [192.168.1.51]\nbroker_devices: [garage-door]\nbroker_mqtts_port: 70000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, filepath.Join(f.dir, "pi-garage", "root"))
	out, code = f.play(bad)
	if code == 0 {
		t.Fatalf("a bad spec on pi-garage passed:\n%s", out)
	}
	counts := recap(t, out)
	if counts["pi-garage"]["failed"] != "1" || counts["pi-kitchen"]["failed"] != "0" || counts["pi-kitchen"]["changed"] != "0" {
		t.Fatalf("a bad spec on pi-garage: %v\n%s", counts, out)
	}
	failure := regexp.MustCompile(`(?m)^fatal: \[pi-garage\]: FAILED! => .*"msg": "([^"]*)"`).FindStringSubmatch(out)
	if failure == nil || !strings.Contains(failure[1], "port") || !strings.Contains(failure[1], "70000") {
		t.Fatalf("pi-garage's failure does not carry mosqprov's message about the port:\n%s", out)
	}
	if !strings.Contains(out, `"rc": 3`) {
		t.Errorf("pi-garage's failure does not carry mosqprov's exit code 3 (bad input):\n%s", out)
	}
	if after := snapshot(t, filepath.Join(f.dir, "pi-garage", "root")); after != before {
		t.Fatalf("a failed bad spec changed pi-garage's files")
	}

	// With -v in every run, the device password never appeared.
	for i, o := range f.outputs {
		if strings.Contains(o, f.password) {
			t.Fatalf("run %d printed the device password:\n%s", i, o)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot is every file's path, mode and content under dir, as one string.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, rel := range files(t, dir) {
		p := filepath.Join(dir, rel)
		info, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %v %x\n", rel, info.Mode(), sum)
	}
	return b.String()
}

// TestReleaseArch holds the role's choice of build to the README's table,
// through the real filter plugin under the Python Ansible runs.
func TestReleaseArch(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatal("Debian's python3 (the one ansible-core uses) is missing")
	}
	script := `
import sys
sys.path.insert(0, "ansible_collections/mosqprov/mosquitto/plugins/filter")
from release_arch import release_arch
pi1 = "processor\t: 0\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\nBogoMIPS\t: 697.95\nCPU architecture: 7\n"
pi4 = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nCPU architecture: 7\n"
cases = [
    (("amd64", "x86_64", ""), "amd64"),
    (("arm64", "aarch64", ""), "arm64"),
    (("armhf", "aarch64", pi4), "armv7"),   # 32-bit Pi OS on a Pi 4's 64-bit kernel
    (("armhf", "armv7l", pi4), "armv7"),
    (("armhf", "armv6l", pi1), "armv6"),    # Pi Zero, Pi 1
    (("armhf", "", pi1), "armv6"),
]
for args, want in cases:
    got = release_arch(*args)
    if got != want:
        print("release_arch%r = %r, want %r" % (args, got, want))
        sys.exit(1)
try:
    release_arch("i386", "i686", "")
except Exception as e:
    print("refused:", e)
else:
    print("i386 was not refused")
    sys.exit(1)
`
	out, err := exec.Command(python, "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refused: release_arch: mosqprov is released for amd64, arm64 and armhf") {
		t.Fatalf("unexpected: %s", out)
	}
}

// TestCollectionBuilds: ansible-galaxy builds the collection into the
// tarball the release publishes, with the module, the filter and the role.
func TestCollectionBuilds(t *testing.T) {
	if _, err := exec.LookPath("ansible-galaxy"); err != nil {
		t.Fatal("ansible-galaxy not found: install ansible-core")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "../scripts/ansible-collection.sh", "1.2.3", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ansible-collection.sh: %v\n%s", err, b)
	}
	tarball := filepath.Join(out, "mosqprov-mosquitto-1.2.3.tar.gz")
	list, err := exec.Command("tar", "-tzf", tarball).Output()
	if err != nil {
		t.Fatalf("tar -tzf %s: %v", tarball, err)
	}
	for _, want := range []string{"MANIFEST.json", "plugins/modules/broker.py", "plugins/filter/release_arch.py",
		"roles/install/tasks/main.yml", "meta/runtime.yml", "README.md"} {
		if !strings.Contains(string(list), want+"\n") {
			t.Errorf("the collection tarball lacks %s:\n%s", want, list)
		}
	}
	manifest, err := exec.Command("tar", "-xzOf", tarball, "MANIFEST.json").Output()
	if err != nil || !strings.Contains(string(manifest), `"version": "1.2.3"`) {
		t.Fatalf("MANIFEST.json does not carry the release's version: %v\n%s", err, manifest)
	}
}
