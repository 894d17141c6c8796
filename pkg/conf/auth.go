package conf

import (
	"fmt"
	"path"
	"strconv"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// ListenerAuth is who may log in on one listener, when the configuration
// says it per listener (Config.PerListener).
type ListenerAuth struct {
	// AllowAnonymous lets clients without a user name in on this listener.
	AllowAnonymous bool `json:"allow_anonymous"`
	// PasswordFile checks the user names and passwords given on this
	// listener: the whole password file, or one holding only the users
	// allowed here (ListenerPasswordFile). Empty: none.
	PasswordFile string `json:"password_file,omitempty"`
}

// Auth forms: how per-listener authentication is written.
const (
	// AuthForm20 is mosquitto 2.0's: per_listener_settings true, then
	// allow_anonymous, password_file and acl_file in every listener block.
	AuthForm20 = "2.0"
	// AuthForm21 is mosquitto 2.1's: the password-file and ACL-file plugins
	// loaded once (plugin_load), used by each listener (plugin_use), and
	// listener_allow_anonymous; 2.1 deprecates the 2.0 form (it logs "The
	// 'per_listener_settings' option is now deprecated", checked with 2.1.2).
	AuthForm21 = "2.1"
)

// Plugin is one plugin_load of the 2.1 form.
type Plugin struct {
	Name, Path, Option, File string
}

// ListenerPasswordFile is the password file of the users allowed on the
// listener on port: the lines of the main password file for those users.
func ListenerPasswordFile(main string, port int) string {
	return main + "." + strconv.Itoa(port)
}

// PasswordPlugins are the password-file plugins the 2.1 form loads: one
// per distinct password file, named after it.
func (c Config) PasswordPlugins() []Plugin {
	var out []Plugin
	seen := map[string]bool{}
	for _, l := range c.Listeners {
		if l.Auth == nil || l.Auth.PasswordFile == "" || seen[l.Auth.PasswordFile] {
			continue
		}
		seen[l.Auth.PasswordFile] = true
		out = append(out, Plugin{Name: pluginName(l.Auth.PasswordFile), Path: path.Join(c.PluginDir, "mosquitto_password_file.so"), Option: "password_file", File: l.Auth.PasswordFile})
	}
	return out
}

// ACLPlugin is the ACL-file plugin the 2.1 form loads (nil without an ACL file).
func (c Config) ACLPlugin() *Plugin {
	if c.ACLFile == "" {
		return nil
	}
	return &Plugin{Name: "acl", Path: path.Join(c.PluginDir, "mosquitto_acl_file.so"), Option: "acl_file", File: c.ACLFile}
}

// PasswordPlugin is the name of the plugin that checks passwords on l.
func (l Listener) PasswordPlugin() string {
	if l.Auth == nil || l.Auth.PasswordFile == "" {
		return ""
	}
	return pluginName(l.Auth.PasswordFile)
}

// pluginName names a plugin instance after its file: "passwd" for the
// password file, "passwd.8883" for a listener's.
func pluginName(file string) string { return path.Base(file) }

// validateAuth checks the per-listener settings.
func (c Config) validateAuth() error {
	if !c.PerListener {
		for _, l := range c.Listeners {
			if l.Auth != nil {
				return errs.Invalid("--listener", "listener %d has its own authentication but the configuration is not per listener", l.Port)
			}
		}
		return nil
	}
	switch c.AuthForm {
	case AuthForm20:
	case AuthForm21:
		if err := ValidatePath("plugin folder", c.PluginDir, false); err != nil {
			return err
		}
	default:
		return errs.Invalid("auth form", "%q is not %s or %s", c.AuthForm, AuthForm20, AuthForm21)
	}
	for _, l := range c.Listeners {
		if l.Auth == nil {
			return errs.Invalid("--listener", "listener %d: per-listener authentication needs every listener to say who may log in", l.Port)
		}
		if err := ValidatePath(fmt.Sprintf("listener %d password file", l.Port), l.Auth.PasswordFile, true); err != nil {
			return err
		}
	}
	return nil
}
