// Package state remembers what the last apply left on disk: a SHA-256 of
// every file it manages, in /etc/mosqprov/state.json. doctor compares the
// files with it to tell which were changed by hand since (drift).
package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"sort"
	"time"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// File is where the state lives (a target path).
const File = "/etc/mosqprov/state.json"

// State is the content of state.json. It holds hashes only: never a secret.
type State struct {
	// Applied is when apply last wrote it (RFC 3339, UTC).
	Applied string `json:"applied"`
	// Files maps a target path to the hex SHA-256 of its content.
	Files map[string]string `json:"files"`
	// Broker is the broker version the last apply found installed, kept
	// because 2.0 and 2.1 differ (password hashes, --test-config, O_NOFOLLOW).
	Broker string `json:"broker_version,omitempty"`
}

// Sum is the hex SHA-256 of data.
func Sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// Digest is what the state keeps of a file: Sum of data after masking the
// value of every remote_password line (a bridge's password in the broker's
// configuration). state.json is world-readable, and a plain hash of a file
// that holds a password would let anyone test guesses against it.
func Digest(data []byte) string {
	if !bytes.Contains(data, []byte("remote_password ")) {
		return Sum(data)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, l := range lines {
		if bytes.HasPrefix(l, []byte("remote_password ")) {
			lines[i] = []byte("remote_password (masked)\n")
		}
	}
	return Sum(bytes.Join(lines, nil))
}

// Record writes the state of paths as they are now on sys. Missing files are
// left out. The write goes through the System, so it happens only when the
// hashes changed (the timestamp is kept when nothing else did), and never in
// dry-run. An empty broker keeps the version recorded before (the package
// step didn't look, e.g. under a --root without dpkg). The result is the
// converge contract: one line for state.json; the broker needs nothing (the
// record is mosqprov's own).
func Record(sys system.System, paths []string, broker string) (system.Result, error) {
	var res system.Result
	action, err := record(sys, paths, broker)
	if err != nil {
		return res, err
	}
	res.Add(system.NewChange("apply state", File, action, ""))
	return res, nil
}

func record(sys system.System, paths []string, broker string) (system.Action, error) {
	st := State{Files: map[string]string{}, Broker: broker}
	for _, p := range paths {
		data, err := sys.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return system.Noop, fmt.Errorf("record state: read %s: %w", p, err)
		}
		st.Files[p] = Digest(data)
	}
	old, err := Load(sys)
	if err == nil && old != nil && st.Broker == "" {
		st.Broker = old.Broker
	}
	if err == nil && old != nil && maps.Equal(old.Files, st.Files) && old.Broker == st.Broker {
		st.Applied = old.Applied
	} else {
		st.Applied = sys.Now().UTC().Format(time.RFC3339)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return system.Noop, err
	}
	// A spec without TLS listeners makes no CA, so nothing else created
	// /etc/mosqprov yet.
	if _, err := sys.Stat(path.Dir(File)); errors.Is(err, fs.ErrNotExist) {
		if _, err := sys.EnsureDir(path.Dir(File), system.Attr{Mode: 0o755, User: "root", Group: "root"}); err != nil {
			return system.Noop, err
		}
	}
	return sys.WriteFile(File, append(data, '\n'), system.Attr{Mode: 0o644, User: "root", Group: "root"})
}

// Load reads the state; nil without error when no apply ever wrote one.
func Load(sys system.System) (*State, error) {
	data, err := sys.ReadFile(File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", File, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", File, err)
	}
	return &st, nil
}

// Drifted is a file that differs from what the last apply left.
type Drifted struct {
	Path string `json:"path"`
	// Removed is set when the file no longer exists.
	Removed bool `json:"removed,omitempty"`
}

// Drift lists, in path order, the recorded files whose content changed.
func (st *State) Drift(sys system.System) []Drifted {
	var out []Drifted
	paths := make([]string, 0, len(st.Files))
	for p := range st.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		data, err := sys.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, Drifted{Path: p, Removed: true})
		case err != nil:
			continue
		case Digest(data) != st.Files[p]:
			out = append(out, Drifted{Path: p})
		}
	}
	return out
}
