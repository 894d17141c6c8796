package conf

import (
	"reflect"
	"strings"
	"testing"
)

// Per-listener authentication renders in each broker's form, reads back
// as it was (so `acl` and `cert revoke` can rewrite the file), and leaves
// the global form as it always was.
func TestPerListenerAuthForms(t *testing.T) {
	base := Config{
		ACLFile: "/etc/mosquitto/acl", CertFile: "/c", KeyFile: "/k", CAFile: "/ca",
		PerListener: true,
		Listeners: []Listener{
			{Type: MQTT, Port: 1883, Bind: "127.0.0.1", Auth: &ListenerAuth{AllowAnonymous: true, PasswordFile: "/etc/mosquitto/passwd"}},
			{Type: MQTTS, Port: 8883, TLSVersion: TLS12, Auth: &ListenerAuth{PasswordFile: "/etc/mosquitto/passwd.8883"}},
			{Type: MQTTS, Port: 8884, TLSVersion: TLS12, MutualTLS: true, Auth: &ListenerAuth{}},
		},
	}
	for _, tc := range []struct {
		form, dir string
		want      []string
		not       []string
	}{
		{AuthForm20, "", []string{"per_listener_settings true\n", "listener 1883 127.0.0.1\nprotocol mqtt\nallow_anonymous true\npassword_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\n", "allow_anonymous false\npassword_file /etc/mosquitto/passwd.8883\n"},
			[]string{"plugin_", "listener_allow_anonymous"}},
		{AuthForm21, "/usr/lib/aarch64-linux-gnu/mosquitto", []string{
			"plugin_load passwd /usr/lib/aarch64-linux-gnu/mosquitto/mosquitto_password_file.so\nplugin_opt_password_file /etc/mosquitto/passwd\n",
			"plugin_load passwd.8883 /usr/lib/aarch64-linux-gnu/mosquitto/mosquitto_password_file.so\nplugin_opt_password_file /etc/mosquitto/passwd.8883\n",
			"plugin_load acl /usr/lib/aarch64-linux-gnu/mosquitto/mosquitto_acl_file.so\nplugin_opt_acl_file /etc/mosquitto/acl\n",
			"listener_allow_anonymous true\nplugin_use passwd\nplugin_use acl\n",
			"listener_allow_anonymous false\nplugin_use passwd.8883\nplugin_use acl\n"},
			[]string{"per_listener_settings", "\nallow_anonymous", "\npassword_file", "\nacl_file"}},
	} {
		t.Run(tc.form, func(t *testing.T) {
			cfg := base
			cfg.AuthForm, cfg.PluginDir = tc.form, tc.dir
			data, err := Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("want %q in\n%s", w, data)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(string(data), n) {
					t.Errorf("%q in\n%s", n, data)
				}
			}
			noMTLS := cfg
			noMTLS.Listeners = cfg.Listeners[:2] // a mutual-TLS listener silences the check
			for _, f := range Warnings(noMTLS.WithDefaults()) {
				if f.Check == "auth" {
					t.Errorf("per-listener passwords taken for none: %s", f.Message)
				}
			}
			back, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.WithDefaults(), cfg.WithDefaults()) {
				t.Errorf("read back\n%+v\nwant\n%+v", back, cfg)
			}
		})
	}
	t.Run("global", func(t *testing.T) {
		cfg := Config{AllowAnonymous: false, PasswordFile: "/etc/mosquitto/passwd", CertFile: "/c", KeyFile: "/k", CAFile: "/ca",
			Listeners: []Listener{{Type: MQTT, Port: 1883, Bind: "127.0.0.1"}}}
		data, err := Render(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "per_listener_settings is false (the default)") || strings.Contains(string(data), "plugin_") {
			t.Errorf("global form changed:\n%s", data)
		}
		cfg.Listeners[0].Auth = &ListenerAuth{}
		if _, err := Render(cfg); err == nil {
			t.Error("a listener's own authentication rendered without PerListener")
		}
	})
}
