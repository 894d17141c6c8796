package bridge

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// Result is what Converge did (or, on a DryRun System, would do): the one
// shape every converge step reports.
type Result = system.Result

// Attr is the bridges file's owner and mode: root's, readable by the
// broker's group (mosquitto re-reads its configuration as its own user on
// SIGHUP), by no one else (it holds remote passwords). Without the
// mosquitto group (the broker not installed yet) it is the caller's, 0600,
// and fallback says so.
func Attr(sys system.System) (attr system.Attr, fallback string) {
	if _, err := sys.LookupGroup(layout.BrokerUser); err != nil {
		var missing system.ErrNoSuchUser
		if errors.As(err, &missing) {
			return system.Attr{Mode: 0o600}, "group " + layout.BrokerUser + " does not exist (is mosquitto installed?); " + File + " is " + sys.CurrentAccount().Name + "'s, 0600, and the broker may not read it on reload"
		}
	}
	return system.Attr{Mode: 0o640, User: "root", Group: layout.BrokerUser}, ""
}

// Converge makes the bridges file and the bridges' TLS files match bridges,
// exactly: a bridge left out is removed with its files, and no bridges at
// all removes the file. Everything is validated before the first write.
// The broker reads bridges only when it starts ("Bridges cannot currently
// be reloaded", mosquitto.conf(5)), so any change needs a restart.
func Converge(sys system.System, bridges []Bridge) (Result, error) {
	var res Result
	data, err := Render(bridges)
	if err != nil {
		return res, err
	}
	old, err := sys.ReadFile(File)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return res, fmt.Errorf("read %s: %w", File, err)
	case !strings.HasPrefix(string(old), Header+"\n"):
		return res, fmt.Errorf("%s was not written by mosqprov (the first line is not its header); move it away first", File)
	}
	if !layout.Exists(sys, layout.ConfDir) {
		if _, err := sys.EnsureDir(layout.ConfDir, system.Attr{Mode: 0o755}); err != nil {
			return res, err
		}
	}
	unlock, err := sys.Lock(File)
	if err != nil {
		return res, err
	}
	defer unlock()

	if err := files(&res, sys, bridges); err != nil {
		return res, err
	}
	if data == nil {
		action, err := sys.Remove(File)
		if err != nil {
			return res, err
		}
		if action.Changed() {
			add(&res, system.NewChange("bridges configuration", File, action, "no bridges left"))
		}
	} else {
		attr, fallback := Attr(sys)
		if fallback != "" {
			res.Warn("%s", fallback)
		}
		action, err := sys.WriteFile(File, data, attr)
		if err != nil {
			return res, fmt.Errorf("write bridges configuration: %w", err)
		}
		add(&res, system.NewChange("bridges configuration", File, action, names(bridges)))
	}
	for _, b := range bridges {
		for _, w := range b.Warnings() {
			res.Warn("%s", w)
		}
	}
	return res, nil
}

// add reports c; any change needs a restart (bridges are read at start).
func add(r *Result, c system.Change) {
	r.Add(c)
	if c.Changed {
		r.Needs(system.NeedRestart)
	}
}

// files writes each bridge's CA, certificate and key, and removes the
// files of bridges no longer listed. Certificates are public; the key is
// the broker's alone (it opens it as the mosquitto user when it connects).
func files(r *Result, sys system.System, bridges []Bridge) error {
	want := map[string]bool{}
	for _, b := range bridges {
		ca, cert, key := b.Files()
		for _, f := range []string{ca, cert, key} {
			if f != "" {
				want[f] = true
			}
		}
	}
	if len(want) > 0 {
		if _, err := sys.EnsureDir(Dir, system.Attr{Mode: 0o755, User: "root", Group: "root"}); err != nil {
			return err
		}
	}
	for _, b := range bridges {
		ca, cert, key := b.Files()
		secret, fallback := layout.BrokerSecret(sys)
		for _, f := range []struct {
			what, path string
			data       []byte
			attr       system.Attr
		}{
			{"bridge " + b.Name + " CA", ca, b.CA, layout.Public},
			{"bridge " + b.Name + " certificate", cert, b.Cert, layout.Public},
			{"bridge " + b.Name + " key", key, b.Key, secret},
		} {
			if f.path == "" {
				continue
			}
			if f.path == key && fallback != "" {
				r.WarnNoAccount(key, layout.BrokerUser, fallback)
			}
			action, err := sys.WriteFile(f.path, f.data, f.attr)
			if err != nil {
				return fmt.Errorf("write %s: %w", f.what, err)
			}
			add(r, system.NewChange(f.what, f.path, action, ""))
		}
	}
	entries, err := sys.ReadDir(Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", Dir, err)
	}
	for _, e := range entries {
		p := path.Join(Dir, e.Name())
		if e.IsDir() || want[p] || !(strings.HasSuffix(p, ".crt") || strings.HasSuffix(p, ".key")) {
			continue
		}
		action, err := sys.Remove(p)
		if err != nil {
			return err
		}
		add(r, system.NewChange("bridge file", p, action, "its bridge is gone"))
	}
	return nil
}

func names(bridges []Bridge) string {
	var n []string
	for _, b := range bridges {
		n = append(n, b.Name)
	}
	return strings.Join(n, ", ")
}
