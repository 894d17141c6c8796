package plan

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// StepListenerUsers writes the password files of listeners limited to some users.
const StepListenerUsers = "listener passwords"

// authPerListener makes cfg say per listener who may log in, in form
// (conf.AuthForm20 or conf.AuthForm21 with the plugins in pluginDir), when
// the spec asks for it; otherwise cfg keeps the global form, byte for byte
// what it always was. A listener limited to some users checks passwords
// against its own file (conf.ListenerPasswordFile); the others against the
// whole password file, so a client that gives a user name is checked even
// where anonymous clients are let in. A mutual-TLS listener takes the user
// name from the certificate and checks no password.
func authPerListener(cfg *conf.Config, s *spec.Spec, withPasswords bool, form, pluginDir string) {
	if !s.PerListenerAuth() {
		return
	}
	cfg.PerListener, cfg.AuthForm, cfg.PluginDir = true, form, pluginDir
	for i, l := range s.Listeners {
		a := &conf.ListenerAuth{AllowAnonymous: s.ListenerAnonymous(l)}
		switch {
		case l.MutualTLS:
		case len(l.Users) > 0:
			a.PasswordFile = conf.ListenerPasswordFile(layout.PasswordFile, l.Port)
		case withPasswords:
			a.PasswordFile = layout.PasswordFile
		}
		cfg.Listeners[i].Auth = a
	}
}

// AuthForm is the form of per-listener authentication the installed
// broker takes (conf.AuthForm20 or conf.AuthForm21 with its plugin
// folder), for `conf write`; warning is set when 2.1 is installed without
// its plugin.
func AuthForm(ctx context.Context, sys system.System) (form, dir, warning string) {
	return authForm(ctx, sys, &Result{})
}

// authForm is the form the installed broker takes: 2.1's plugins when
// mosquitto 2.1 or later is installed and its password-file plugin is
// found, else 2.0's per_listener_settings (which 2.1 still reads, with a
// deprecation warning in its log).
func authForm(ctx context.Context, sys system.System, r *Result) (form, dir string, warning string) {
	v, known := installedBroker(ctx, sys, r)
	if !known || !v.AtLeast(2, 1) {
		return conf.AuthForm20, "", ""
	}
	if dir := pluginDir(sys); dir != "" {
		return conf.AuthForm21, dir, ""
	}
	return conf.AuthForm20, "", fmt.Sprintf("mosquitto %s is installed but its password-file plugin (/usr/lib/*/mosquitto/mosquitto_password_file.so) was not found: authentication per listener is written in 2.0's form, which 2.1 reads with a deprecation warning", v)
}

// pluginDir finds Debian's folder of mosquitto plugins,
// /usr/lib/<multiarch>/mosquitto (x86_64-linux-gnu, aarch64-linux-gnu,
// arm-linux-gnueabihf).
func pluginDir(sys system.System) string {
	entries, err := sys.ReadDir("/usr/lib")
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.Contains(e.Name(), "-linux-") {
			continue
		}
		dir := path.Join("/usr/lib", e.Name(), "mosquitto")
		if fi, err := sys.Stat(path.Join(dir, "mosquitto_password_file.so")); err == nil && !fi.IsDir {
			return dir
		}
	}
	return ""
}

// listenerFiles are the password files of the spec's listeners limited to
// some users (a mutual-TLS listener checks no password).
func listenerFiles(s *spec.Spec) []passwd.ListenerFile {
	var out []passwd.ListenerFile
	for _, l := range s.Listeners {
		if len(l.Users) == 0 || l.MutualTLS {
			continue
		}
		out = append(out, passwd.ListenerFile{
			Port:   l.Port,
			Path:   conf.ListenerPasswordFile(layout.PasswordFile, l.Port),
			Users:  l.Users,
			Header: fmt.Sprintf("Managed by mosqprov: the users of %s who may log in on the %s listener on port %d\n(%s). Change them in broker.yaml, then `mosqprov apply`.", layout.PasswordFile, l.Type, l.Port, strings.Join(l.Users, ", ")),
		})
	}
	return out
}

// listenerUsersStep writes, for each listener limited to some users, the
// password file of those users: their lines of the password file, which
// the users step has just converged. The files are broker secrets like the
// password file (mosquitto:mosquitto 0600); a change needs a reload.
func listenerUsersStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	files := listenerFiles(s)
	if len(files) == 0 {
		return nil
	}
	attr, fallback := layout.BrokerSecret(sys)
	res, err := passwd.WriteListenerFiles(sys, layout.PasswordFile, files, attr)
	if err != nil {
		return err
	}
	if fallback != "" {
		for _, c := range res.Changes {
			if c.Changed {
				res.WarnNoAccount(c.Path, layout.BrokerUser, fallback)
			}
		}
	}
	r.add(StepListenerUsers, res)
	return nil
}

// StepListenerUsersGone removes the password files of listeners no longer
// limited to some users.
const StepListenerUsersGone = "listener passwords removed"

// listenerUsersGoneStep removes the listener password files mosqprov wrote
// that no listener of the spec uses any more (users: dropped, or the
// listener gone), after the configuration stopped naming them. Only files
// carrying mosqprov's marker, never through a symlink (pkg/passwd).
func listenerUsersGoneStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	var keep []string
	for _, f := range listenerFiles(s) {
		keep = append(keep, f.Path)
	}
	res, err := passwd.RemoveListenerFiles(sys, layout.PasswordFile, keep)
	if err != nil {
		return err
	}
	r.add(StepListenerUsersGone, res)
	return nil
}
