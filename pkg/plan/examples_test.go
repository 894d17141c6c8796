package plan

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// The Ansible example, run for real with Debian's ansible-core against
// localhost under a --root: the first run is changed, the second is not,
// and `changed` comes from mosqprov's json.
func TestAnsibleExample(t *testing.T) {
	playbook, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Fatal("ansible-playbook not found: install it with `apt-get install -y ansible-core` (.ci/steps/ansible.sh does)")
	}
	bin := buildBinary(t)
	s, env := loadExample(t, 0)
	root := newRoot(t)
	secret := filepath.Join(env.dir, "bot-from-ansible")
	// The test copy of the spec names the secret where the playbook puts it.
	data, _ := os.ReadFile(s.File())
	text := regexp.MustCompile(`password_file: [^}]+}`).ReplaceAllString(string(data), "password_file: "+secret+"}")
	specCopy := filepath.Join(env.dir, "broker-ansible.yaml")
	os.WriteFile(specCopy, []byte(text), 0o644)

	run := func() string {
		t.Helper()
		cmd := exec.Command(playbook, "-i", "localhost,", "-c", "local", "../../examples/ansible/playbook.yml",
			"-e", "mosqprov_bin="+bin, "-e", "mosqprov_root="+root, "-e", "mosqprov_spec_src="+specCopy,
			"-e", "mosqprov_bot_secret="+secret, "-e", "mqtt_blinds_password="+env.blinds, "-e", "mqtt_bot_password="+env.bot)
		cmd.Env = append(os.Environ(), "ANSIBLE_COLLECTIONS_PATH=../../ansible", "ANSIBLE_NOCOLOR=1", "ANSIBLE_HOST_KEY_CHECKING=0", "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_REMOTE_TEMP="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ansible-playbook: %v\n%s", err, out)
		}
		return string(out)
	}
	recap := regexp.MustCompile(`localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0`)
	taskChanged := regexp.MustCompile(`(?s)TASK \[Apply broker.yaml\][^\n]*\n(changed|ok): \[localhost\]`)

	first := run()
	if m := taskChanged.FindStringSubmatch(first); m == nil || m[1] != "changed" {
		t.Fatalf("first run: the apply task is not changed:\n%s", first)
	}
	if !strings.Contains(first, "broker configuration") {
		t.Fatalf("first run: the changes are not listed:\n%s", first)
	}
	if _, err := os.Stat(filepath.Join(root, layout.DropIn)); err != nil {
		t.Fatalf("first run wrote no configuration: %v", err)
	}
	second := run()
	m := recap.FindStringSubmatch(second)
	if m == nil || m[2] != "0" {
		t.Fatalf("second run is not all ok/unchanged:\n%s", second)
	}
	if m := taskChanged.FindStringSubmatch(second); m == nil || m[1] != "ok" {
		t.Fatalf("second run: the apply task is changed:\n%s", second)
	}
}

// The cloud-init example: its spec is valid, and its runcmd, run on the
// files its write_files put in place (under a --root), converges, then
// reports nothing to change.
func TestCloudInitExample(t *testing.T) {
	data, err := os.ReadFile("../../examples/cloud-init.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("#cloud-config\n")) {
		t.Fatal("cloud-init user-data must start with #cloud-config")
	}
	var ci struct {
		Packages   []string `yaml:"packages"`
		WriteFiles []struct {
			Path        string `yaml:"path"`
			Permissions string `yaml:"permissions"`
			Content     string `yaml:"content"`
		} `yaml:"write_files"`
		RunCmd [][]string `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(data, &ci); err != nil {
		t.Fatal(err)
	}
	root := newRoot(t)
	var specText string
	for _, f := range ci.WriteFiles {
		host := filepath.Join(root, f.Path)
		os.MkdirAll(filepath.Dir(host), 0o755)
		if err := os.WriteFile(host, []byte(f.Content), 0o644); err != nil {
			t.Fatal(err)
		}
		if f.Path == layout.Spec {
			specText = f.Content
		}
	}
	s, err := spec.Parse("cloud-init broker.yaml", []byte(specText))
	if err == nil {
		err = s.Validate()
	}
	if err != nil {
		t.Fatalf("the spec in cloud-init.yaml: %v", err)
	}
	if len(s.Users) == 0 || s.Users[0].Hash == "" {
		t.Fatal("cloud-init's spec should hold hashes only")
	}
	bin := buildBinary(t)
	ran := 0
	for _, c := range ci.RunCmd {
		if len(c) == 0 || filepath.Base(c[0]) != "mosqprov" {
			continue
		}
		for i, want := range []bool{true, false} {
			cmd := exec.Command(bin, append(c[1:], "--root", root)...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("runcmd %v (run %d): %v\n%s", c, i+1, err, out)
			}
			var report struct {
				Changed bool `json:"changed"`
			}
			if err := json.Unmarshal(out, &report); err != nil || report.Changed != want {
				t.Fatalf("runcmd %v (run %d): changed=%v, want %v (%v)\n%s", c, i+1, report.Changed, want, err, out)
			}
		}
		ran++
	}
	if ran != 1 {
		t.Fatalf("cloud-init.yaml runs mosqprov %d times, want once", ran)
	}
	if _, err := system.NewReal(root).ReadFile(layout.PasswordFile); err != nil {
		t.Fatal(err)
	}
}
