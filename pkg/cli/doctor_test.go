package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/doctor"
)

func TestDoctorCommand(t *testing.T) {
	root := t.TempDir()
	key := filepath.Join(root, "etc/mosquitto/certs/server.key")
	os.MkdirAll(filepath.Dir(key), 0o755)
	os.WriteFile(key, []byte("generated test fixture, not a key\n"), 0o644)

	code, out, _ := vdRun(t, root, "", nil, "doctor")
	if code != ExitError {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"error   package-missing  mosquitto\n  the mosquitto package is not installed\n  why: there is no broker to run\n  fix: sudo mosqprov install\n",
		"error   secret-exposed  /etc/mosquitto/certs/server.key\n  the server key is readable by every user on this machine",
		"fix: sudo chown mosquitto:mosquitto /etc/mosquitto/certs/server.key && sudo chmod 600 /etc/mosquitto/certs/server.key",
		"info    spec-missing",
		"info    service-unchecked",
		"2 errors, 0 warnings",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = vdRun(t, root, "", nil, "doctor", "-o", "json")
	var rep struct {
		Command string        `json:"command"`
		Result  doctor.Report `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitError || rep.Command != "doctor" {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if rep.Result.Count(doctor.Error) != 2 || rep.Result.Findings[0].Fix == "" {
		t.Fatalf("%+v", rep.Result)
	}

	// A broken spec is a finding too, not the end of the checks.
	bad := filepath.Join(root, "bad.yaml")
	os.WriteFile(bad, []byte("hostname: pi\nlisteners: 3\n"), 0o644)
	code, out, _ = vdRun(t, root, "", nil, "doctor", "-f", bad)
	if code != ExitError || !strings.Contains(out, "error   spec-invalid  "+bad+"\n  "+bad+":2:") || !strings.Contains(out, "package-missing") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
