package cli

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFromBuild builds the real binary from this checkout the two
// ways people get one: a release build (-ldflags -X) and a plain `go build`
// in a git checkout, where `version` falls back to what the toolchain
// embedded (runtime/debug.ReadBuildInfo). The commit must be the checkout's.
func TestVersionFromBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout, nothing to fall back on: %v", err)
	}
	commit := strings.TrimSpace(string(head))
	bin := filepath.Join(t.TempDir(), "mosqprov")
	version := func(ldflags string) BuildInfo {
		t.Helper()
		// GOFLAGS may carry -buildvcs=false (CI sets it); a person's build doesn't.
		build := exec.Command("go", "build", "-buildvcs=true", "-ldflags", ldflags, "-o", bin, "../../cmd/mosqprov")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "version", "-o", "json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Result BuildInfo }
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return r.Result
	}

	plain := version("")
	if plain.Commit != commit || !strings.HasPrefix(plain.Version, "v0.0.0-") || !strings.Contains(plain.Version, commit[:12]) || plain.Date == "unknown" {
		t.Errorf("plain build: %+v, want the checkout's commit %s", plain, commit)
	}
	release := version("-X github.com/mosqprov/mosqprov/pkg/cli.version=v9.8.7 -X github.com/mosqprov/mosqprov/pkg/cli.commit=abc1234 -X github.com/mosqprov/mosqprov/pkg/cli.date=2030-01-02T03:04:05Z")
	if release.Version != "v9.8.7" || release.Commit != "abc1234" || release.Date != "2030-01-02T03:04:05Z" {
		t.Errorf("release build: %+v", release)
	}
}
