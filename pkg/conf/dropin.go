package conf

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Parse reads back a file mosqprov rendered, so a command that changes one
// setting (the ACL commands add or drop acl_file) keeps everything else.
// It refuses files it did not write.
func Parse(data []byte) (Config, error) {
	if !IsManaged(data) {
		return Config{}, errors.New("not written by mosqprov (the first line is not its header)")
	}
	var cfg Config
	var cur *Listener
	// The 2.1 form's password plugins: name -> password file.
	plugin, pluginFiles := "", map[string]string{}
	bad := func(d directive, why string) error {
		return fmt.Errorf("line %d: %s: %s", d.line, strings.Join(append([]string{d.name}, d.args...), " "), why)
	}
	one := func(d directive) (string, error) {
		if len(d.args) != 1 {
			return "", bad(d, "expected one value")
		}
		return d.args[0], nil
	}
	for _, d := range directives(data) {
		switch d.name {
		case "pid_file", "persistence_location", "persistence", "log_dest":
			if cfg.Standalone == nil {
				cfg.Standalone = &Standalone{}
			}
			var err error
			switch d.name {
			case "pid_file":
				cfg.Standalone.PIDFile, err = one(d)
			case "persistence_location":
				cfg.Standalone.PersistenceDir, err = one(d)
			case "log_dest":
				if len(d.args) != 2 || d.args[0] != "file" {
					return Config{}, bad(d, "expected log_dest file PATH")
				}
				cfg.Standalone.LogFile = d.args[1]
			}
			if err != nil {
				return Config{}, err
			}
		case "allow_anonymous", "listener_allow_anonymous":
			v, err := one(d)
			if err != nil {
				return Config{}, err
			}
			if v != "true" && v != "false" {
				return Config{}, bad(d, "expected true or false")
			}
			if cur == nil && d.name == "allow_anonymous" {
				cfg.AllowAnonymous = v == "true"
				break
			}
			if cur == nil {
				return Config{}, bad(d, "outside a listener")
			}
			if d.name == "listener_allow_anonymous" {
				cfg.PerListener, cfg.AuthForm = true, AuthForm21
			}
			listenerAuth(cur).AllowAnonymous = v == "true"
		case "password_file":
			v, err := one(d)
			if err != nil {
				return Config{}, err
			}
			if cur != nil {
				listenerAuth(cur).PasswordFile = v
			} else {
				cfg.PasswordFile = v
			}
		case "acl_file":
			v, err := one(d)
			if err != nil {
				return Config{}, err
			}
			cfg.ACLFile = v
		case "per_listener_settings":
			v, err := one(d)
			if err != nil {
				return Config{}, err
			}
			cfg.PerListener, cfg.AuthForm = v == "true", AuthForm20
		case "plugin_load":
			if len(d.args) != 2 {
				return Config{}, bad(d, "expected plugin_load NAME PATH")
			}
			plugin = d.args[0]
			cfg.PluginDir = path.Dir(d.args[1])
		case "plugin_opt_password_file", "plugin_opt_acl_file":
			v, err := one(d)
			if err != nil {
				return Config{}, err
			}
			if d.name == "plugin_opt_acl_file" {
				cfg.ACLFile = v
			} else {
				pluginFiles[plugin] = v
			}
		case "plugin_use":
			v, err := one(d)
			if err != nil {
				return Config{}, err
			}
			if cur == nil {
				return Config{}, bad(d, "outside a listener")
			}
			if f, ok := pluginFiles[v]; ok {
				listenerAuth(cur).PasswordFile = f
			}
		case "listener":
			if len(d.args) < 1 || len(d.args) > 2 {
				return Config{}, bad(d, "expected listener PORT [BIND]")
			}
			port, err := strconv.Atoi(d.args[0])
			if err != nil {
				return Config{}, bad(d, "bad port")
			}
			cfg.Listeners = append(cfg.Listeners, Listener{Type: MQTT, Port: port})
			cur = &cfg.Listeners[len(cfg.Listeners)-1]
			if len(d.args) == 2 {
				cur.Bind = d.args[1]
			}
		case "protocol", "certfile", "keyfile", "cafile", "tls_version", "require_certificate", "use_identity_as_username", "crlfile":
			if cur == nil {
				return Config{}, bad(d, "outside a listener")
			}
			v, err := one(d)
			if err != nil {
				return Config{}, err
			}
			switch d.name {
			case "protocol":
				if v == "websockets" && cur.Type == MQTTS {
					cur.Type = WSS
				} else if v == "websockets" {
					cur.Type = WS
				}
			case "certfile":
				cfg.CertFile = v
			case "keyfile":
				cfg.KeyFile = v
			case "cafile":
				cfg.CAFile = v
			case "tls_version":
				cur.TLSVersion = v
			case "require_certificate":
				cur.MutualTLS = v == "true"
			case "crlfile":
				cfg.CRLFile = v
			}
			if d.name == "certfile" {
				if cur.Type == WS {
					cur.Type = WSS
				} else {
					cur.Type = MQTTS
				}
			}
		default:
			return Config{}, bad(d, "not a setting mosqprov writes")
		}
	}
	// A hand edit can keep the header and still put in what Render would
	// refuse; rewriting such a file must not be the first to notice.
	if err := cfg.WithDefaults().Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// listenerAuth is l's per-listener authentication, made when missing.
func listenerAuth(l *Listener) *ListenerAuth {
	if l.Auth == nil {
		l.Auth = &ListenerAuth{}
	}
	return l.Auth
}
