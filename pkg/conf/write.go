package conf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Attr is the configuration file's owner and mode: like Debian's own
// mosquitto.conf, root's and world-readable (it holds no secret).
var Attr = layout.Public

// Write converges the file at path to cfg: it renders (validating first, so
// bad input changes nothing), writes only on a difference, and says what the
// broker needs. Listener changes need a restart; when only the global
// authentication lines changed (acl_file, password_file, allow_anonymous,
// which mosquitto.conf(5) says are reloaded on SIGHUP, checked with 2.0.11)
// a reload is enough and no client is dropped; so it is for a listener's
// max_connections when cfg.MaxConnectionsOnReload (mosquitto 2.1).
func Write(sys system.System, p string, cfg Config) (system.Result, error) {
	var res system.Result
	data, err := Render(cfg)
	if err != nil {
		return res, err
	}
	unlock, err := lockDir(sys, p)
	if err != nil {
		return res, err
	}
	defer unlock()
	old, err := sys.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", p, err)
	}
	action, err := sys.WriteFile(p, data, Attr)
	if err != nil {
		return res, fmt.Errorf("write broker configuration: %w", err)
	}
	res.Add(system.NewChange("broker configuration", p, action, ""))
	if action.Changed() {
		res.Needs(needFor(old, data, cfg.MaxConnectionsOnReload))
	}
	return res, nil
}

// lockDir makes sure the folder exists (creating it like Debian's conf.d,
// root's and 0755) and locks it against another mosqprov writing there.
func lockDir(sys system.System, p string) (func(), error) {
	dir := path.Dir(p)
	if !layout.Exists(sys, dir) {
		if _, err := sys.EnsureDir(dir, system.Attr{Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	return sys.Lock(p)
}

// reloadable are the lines a running broker re-reads on SIGHUP: the
// authentication lines and the tunables measured to take effect on reload
// (tunables.go).
var reloadable = append([]string{"acl_file ", "password_file ", "allow_anonymous "}, reloadableTunables...)

// NeedFor says what a running broker needs to pick up new in place of old.
func NeedFor(old, new []byte) system.Need { return needFor(old, new, false) }

// needFor is NeedFor, with a listener's max_connections among the lines a
// reload applies when maxConnOnReload (mosquitto 2.1,
// MaxConnectionsReloads).
func needFor(old, new []byte, maxConnOnReload bool) system.Need {
	if bytes.Equal(old, new) {
		return system.NeedNothing
	}
	if len(old) == 0 {
		return system.NeedRestart
	}
	if bytes.Equal(stripReloadable(old, maxConnOnReload), stripReloadable(new, maxConnOnReload)) {
		return system.NeedReload
	}
	return system.NeedRestart
}

func stripReloadable(data []byte, maxConnOnReload bool) []byte {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		// Blank lines and comments mean nothing to the broker.
		keep := line != "" && !strings.HasPrefix(line, "#")
		for _, p := range reloadable {
			if strings.HasPrefix(line, p) {
				keep = false
			}
		}
		if maxConnOnReload && strings.HasPrefix(line, "max_connections ") {
			keep = false
		}
		if keep {
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\n"))
}
