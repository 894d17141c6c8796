package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/plan"
)

// confOptions are the flags of conf render, write and check: they describe
// the configuration, and every subcommand builds the same one from them.
type confOptions struct {
	*App
	listeners      []string
	mutualTLS      bool
	tlsVersion     string
	allowAnonymous bool
	passwordFile   string
	aclFile        string
	cert           string
	key            string
	cafile         string
	path           string
	pathSet        bool
	standalone     bool
	pidFile        string
	persistenceDir string
	logFile        string
	// limited are the password files of the listeners limited to some
	// users (--listener ...,user=NAME), set by config.
	limited []passwd.ListenerFile
}

func newConfCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conf",
		Short: "Render, write and check the broker's configuration",
		Long: `The broker's configuration is a drop-in, /etc/mosquitto/conf.d/mosqprov.conf:
Debian's own mosquitto.conf keeps pid_file, persistence and log_dest and
includes conf.d, and is never edited (that would make package upgrades stop at
a conffile question).

Listeners are given with --listener TYPE[:PORT[:BIND]][,mtls], repeatable:
TYPE is mqtt (plain, default port 1883, bound to 127.0.0.1 unless a BIND is
given), mqtts (TLS, 8883), ws (WebSockets, 8080, bound to 127.0.0.1) or wss
(WebSockets over TLS, 9443); BIND is an IP address or * for every interface;
,mtls on a TLS listener requires a client certificate. Without --listener the
set is mqtt:1883:127.0.0.1, mqtts:8883 and wss:9443.

Who may log in on a listener, as broker.yaml's listeners[].allow_anonymous and
listeners[].users: ,anonymous lets clients without a user name in there
(,no-anonymous keeps them out under --allow-anonymous); ,user=NAME
(repeatable) lets only those users of the password file in, through the
listener's own password file, PASSWORD_FILE.PORT, which conf write writes. Any
of them makes authentication per listener, in the installed broker's form.`,
	}
	cmd.AddCommand(newConfRenderCmd(a), newConfWriteCmd(a), newConfCheckCmd(a))
	return cmd
}

func bindConfFlags(cmd *cobra.Command, o *confOptions) {
	f := cmd.Flags()
	f.StringArrayVar(&o.listeners, "listener", nil, "add a `TYPE[:PORT[:BIND]][,mtls][,anonymous|,no-anonymous][,user=NAME]...` listener (repeatable; see mosqprov conf --help)")
	f.BoolVar(&o.mutualTLS, "mutual-tls", false, "require a client certificate on every TLS listener (its CN becomes the user name)")
	f.StringVar(&o.tlsVersion, "tls-version", conf.DefaultTLSVersion, "minimum TLS version of TLS listeners: tlsv1.2 or tlsv1.3")
	f.BoolVar(&o.allowAnonymous, "allow-anonymous", false, "let clients connect without a user name")
	f.StringVar(&o.passwordFile, "password-file", layout.PasswordFile, "password `FILE` (empty: none)")
	f.StringVar(&o.aclFile, "acl-file", layout.ACLFile, "ACL `FILE`, referenced only when it has rules (empty: none)")
	f.StringVar(&o.cert, "cert", layout.ServerCert, "server certificate `FILE` of TLS listeners")
	f.StringVar(&o.key, "key", layout.ServerKey, "server key `FILE` of TLS listeners")
	f.StringVar(&o.cafile, "cafile", layout.BrokerCACert, "CA certificate `FILE` (for mutual TLS, and sent to clients)")
	f.StringVar(&o.path, "conf", layout.DropIn, "the configuration `FILE` to write (or check against)")
	f.BoolVar(&o.standalone, "standalone", false, "render a complete file (pid_file, persistence, log_dest) for layouts without Debian's mosquitto.conf")
	d := conf.DebianStandalone()
	f.StringVar(&o.pidFile, "pid-file", d.PIDFile, "with --standalone: the broker's pid `FILE`")
	f.StringVar(&o.persistenceDir, "persistence-dir", d.PersistenceDir, "with --standalone: persistence_location `DIR`")
	f.StringVar(&o.logFile, "log-file", d.LogFile, "with --standalone: the log `FILE`")
}

// flagsSeen records which flags were given, once cobra has parsed them.
func (o *confOptions) flagsSeen(cmd *cobra.Command) error {
	f := cmd.Flags()
	o.pathSet = f.Changed("conf")
	if !o.standalone {
		for _, n := range []string{"pid-file", "persistence-dir", "log-file"} {
			if f.Changed(n) {
				return flagErrorf("--%s only applies with --standalone", n)
			}
		}
	}
	return nil
}

func newConfRenderCmd(a *App) *cobra.Command {
	o := &confOptions{App: a}
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the configuration the flags describe",
		Long: `Print the configuration the flags describe, byte for byte what conf write
would write to --conf. Nothing is read from or written to the machine.`,
		Example: `  mosqprov conf render
  mosqprov conf render --listener mqtt:1883:127.0.0.1 --listener mqtts,mtls --mutual-tls
  mosqprov conf render --standalone --listener mqtts:8883 > mosquitto.conf   # no Debian mosquitto.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.flagsSeen(cmd); err != nil {
				return err
			}
			return runConfRender(cmd.Context(), o)
		},
	}
	bindConfFlags(cmd, o)
	return cmd
}

func newConfWriteCmd(a *App) *cobra.Command {
	o := &confOptions{App: a}
	cmd := &cobra.Command{
		Use:   "write",
		Short: "Write the configuration when it differs, then restart a running broker",
		Long: `Write the configuration the flags describe to --conf when it differs from
what is there. A running broker is restarted when listeners changed, or
reloaded when only allow_anonymous, password_file or acl_file changed.
Unchanged: nothing is written or restarted.`,
		Example: `  sudo mosqprov conf write                       # mqtt on 127.0.0.1:1883, mqtts:8883, wss:9443
  sudo mosqprov conf write --listener mqtts --listener wss:9443 --dry-run
  sudo mosqprov conf write --listener 'mqtt:1883:*' --allow-anonymous   # a lab broker: clear text, no login
  sudo mosqprov conf write --listener mqtt:1883:127.0.0.1,anonymous --listener mqtts:8883,user=blinds,user=phone`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.flagsSeen(cmd); err != nil {
				return err
			}
			return runConfWrite(cmd.Context(), o)
		},
	}
	bindConfFlags(cmd, o)
	return cmd
}

func newConfCheckCmd(a *App) *cobra.Command {
	o := &confOptions{App: a}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the configuration the flags describe against this machine",
		Long: `Check the configuration the flags describe, as it would be written to --conf:
its ports against every other listener of the broker's configuration
(mosquitto.conf and its include_dir files), settings the broker refuses to see
twice, that every file it names exists and is readable by the mosquitto user,
and what a person should know (plain listeners beyond loopback, WebSockets
listeners binding every interface). Exit 1 when an error is found.`,
		Example: `  sudo mosqprov conf check
  sudo mosqprov conf check --listener mqtts:8883 --listener ws:8080 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.flagsSeen(cmd); err != nil {
				return err
			}
			return runConfCheck(cmd.Context(), o)
		},
	}
	bindConfFlags(cmd, o)
	return cmd
}

// listenerFlag is one --listener: the listener, and who may log in on it
// when the flag says (,anonymous / ,no-anonymous, ,user=NAME), as
// broker.yaml's listeners[].allow_anonymous and listeners[].users.
type listenerFlag struct {
	conf.Listener
	spec      string
	anonymous *bool
	users     []string
}

// perListener reports whether the flag says who may log in on its listener.
func (l listenerFlag) perListener() bool { return l.anonymous != nil || len(l.users) > 0 }

// parseListener reads TYPE[:PORT[:BIND]][,OPTION]...: BIND is whatever
// follows the second colon, so IPv6 addresses need no brackets
// (mqtt:1883:::1); the options are mtls, anonymous, no-anonymous and
// user=NAME (repeatable).
func parseListener(spec string) (listenerFlag, error) {
	main, opts, _ := strings.Cut(spec, ",")
	parts := strings.SplitN(main, ":", 3)
	lf := listenerFlag{spec: spec}
	l := &lf.Listener
	l.Type = conf.Type(parts[0])
	valid := false
	for _, t := range conf.Types {
		valid = valid || l.Type == t
	}
	if !valid {
		return lf, errs.Invalid("--listener", "%q: type %q is not mqtt, mqtts, ws or wss", spec, parts[0])
	}
	l.Port = l.Type.DefaultPort()
	if len(parts) > 1 && parts[1] != "" {
		p, err := strconv.Atoi(parts[1])
		if err != nil {
			return lf, errs.Invalid("--listener", "%q: port %q is not a number", spec, parts[1])
		}
		l.Port = p
	}
	if len(parts) > 2 {
		l.Bind = strings.TrimSuffix(strings.TrimPrefix(parts[2], "["), "]")
		if l.Bind == "" {
			return lf, errs.Invalid("--listener", "%q: empty bind address (write * for every interface)", spec)
		}
		if l.Bind == "*" {
			l.Bind = ""
		}
	} else if !l.TLS() {
		// Plain listeners send passwords in clear: loopback unless asked
		// (ws too: the flag's promise, though 2.0.11 binds it everywhere).
		l.Bind = conf.LoopbackBind
	}
	if opts == "" {
		return lf, nil
	}
	for _, opt := range strings.Split(opts, ",") {
		switch name, value, hasValue := strings.Cut(opt, "="); {
		case opt == "mtls":
			l.MutualTLS = true
		case opt == "anonymous", opt == "no-anonymous":
			allow := opt == "anonymous"
			if lf.anonymous != nil && *lf.anonymous != allow {
				return lf, errs.Invalid("--listener", "%q: anonymous and no-anonymous contradict each other", spec)
			}
			lf.anonymous = &allow
		case name == "user" && hasValue:
			if err := passwd.ValidateListenerUser(value); err != nil {
				return lf, errs.Invalid("--listener", "%q: user %s", spec, errs.Problem(err))
			}
			if slices.Contains(lf.users, value) {
				return lf, errs.Invalid("--listener", "%q: user %q is given twice", spec, value)
			}
			lf.users = append(lf.users, value)
		default:
			return lf, errs.Invalid("--listener", "%q: option %q is not mtls, anonymous, no-anonymous or user=NAME", spec, opt)
		}
	}
	return lf, nil
}

// config builds and validates the configuration the flags describe.
// acl_file is referenced only when the ACL file has rules: an acl_file
// without rules denies every client everything.
func (o *confOptions) config(ctx context.Context) (conf.Config, error) {
	cfg := conf.Config{
		AllowAnonymous: o.allowAnonymous,
		PasswordFile:   o.passwordFile,
		CertFile:       o.cert,
		KeyFile:        o.key,
		CAFile:         o.cafile,
	}
	if len(o.listeners) == 0 {
		cfg.Listeners = conf.Default().Listeners
	}
	var flags []listenerFlag
	perListener := false
	for _, spec := range o.listeners {
		lf, err := parseListener(spec)
		if err != nil {
			return cfg, err
		}
		flags = append(flags, lf)
		perListener = perListener || lf.perListener()
		cfg.Listeners = append(cfg.Listeners, lf.Listener)
	}
	if o.mutualTLS && !cfg.HasTLS() {
		return cfg, errs.Invalid("--mutual-tls", "no TLS listener (mqtts or wss) to require client certificates on")
	}
	for i := range cfg.Listeners {
		if cfg.Listeners[i].TLS() {
			cfg.Listeners[i].TLSVersion = o.tlsVersion
			cfg.Listeners[i].MutualTLS = cfg.Listeners[i].MutualTLS || o.mutualTLS
		}
	}
	if perListener {
		if err := o.authPerListener(ctx, &cfg, flags); err != nil {
			return cfg, err
		}
	}
	if o.standalone {
		cfg.Standalone = &conf.Standalone{PIDFile: o.pidFile, PersistenceDir: o.persistenceDir, LogFile: o.logFile}
	}
	if err := conf.ValidatePath("--acl-file", o.aclFile, true); err != nil {
		return cfg, err
	}
	if err := conf.ValidatePath("--conf", o.path, false); err != nil {
		return cfg, err
	}
	if o.aclFile != "" {
		rules, err := acl.Load(o.Sys, o.aclFile)
		if err != nil {
			return cfg, err
		}
		cfg.ACLFile = rules.ConfPath(o.aclFile)
	}
	// Once something was revoked (`cert revoke`), the mutual-TLS listeners
	// keep checking the revocation list.
	cfg.CRLFile = certs.BrokerCRLFile(o.Sys, certs.DefaultPaths())
	cfg = cfg.WithDefaults()
	return cfg, cfg.Validate()
}

// authPerListener makes cfg say per listener who may log in, as apply
// does for broker.yaml's listeners[].allow_anonymous and users, in the
// installed broker's form (2.0: per_listener_settings; 2.1: plugins). A
// listener without ,anonymous or ,no-anonymous takes --allow-anonymous; one
// without ,user=NAME lets every user of --password-file in; one with them
// checks passwords against its own file, --password-file.PORT, holding
// only their lines (written by conf write). A mutual-TLS listener takes the
// user name from the certificate and checks no password.
func (o *confOptions) authPerListener(ctx context.Context, cfg *conf.Config, flags []listenerFlag) error {
	if err := conf.ValidatePath("--password-file", o.passwordFile, true); err != nil {
		return err
	}
	form, dir, warning := plan.AuthForm(ctx, o.Sys)
	if warning != "" {
		o.Warn("%s", warning)
	}
	cfg.PerListener, cfg.AuthForm, cfg.PluginDir = true, form, dir
	o.limited = nil
	for i, lf := range flags {
		l := &cfg.Listeners[i]
		a := &conf.ListenerAuth{AllowAnonymous: o.allowAnonymous}
		if lf.anonymous != nil {
			a.AllowAnonymous = *lf.anonymous
		}
		switch {
		case len(lf.users) > 0 && l.MutualTLS:
			return errs.Invalid("--listener", "%q: user= on a mutual-TLS listener: the client certificate names the user, not a password", lf.spec)
		case len(lf.users) > 0 && o.passwordFile == "":
			return errs.Invalid("--listener", "%q: user= needs a password file (--password-file is empty)", lf.spec)
		case l.MutualTLS:
		case len(lf.users) > 0:
			a.PasswordFile = conf.ListenerPasswordFile(o.passwordFile, l.Port)
			o.limited = append(o.limited, passwd.ListenerFile{
				Port:   l.Port,
				Path:   a.PasswordFile,
				Users:  lf.users,
				Header: fmt.Sprintf("Managed by mosqprov: the users of %s who may log in on the %s listener on port %d\n(%s). Change them with `mosqprov conf write --listener ...,user=NAME`.", o.passwordFile, l.Type, l.Port, strings.Join(lf.users, ", ")),
			})
		default:
			a.PasswordFile = o.passwordFile
		}
		l.Auth = a
	}
	return nil
}

func (o *confOptions) warn(cfg conf.Config) {
	for _, f := range conf.Warnings(cfg) {
		o.Warn("%s", f.Message)
	}
}

type confRendered struct {
	Path   string      `json:"path"`
	Config conf.Config `json:"config"`
	Text   string      `json:"text"`
}

func runConfRender(ctx context.Context, o *confOptions) error {
	cfg, err := o.config(ctx)
	if err != nil {
		return err
	}
	data, err := conf.Render(cfg)
	if err != nil {
		return err
	}
	o.warn(cfg)
	o.Result(confRendered{Path: o.path, Config: cfg, Text: string(data)}, func(w io.Writer) { w.Write(data) })
	return nil
}

func runConfWrite(ctx context.Context, o *confOptions) error {
	if o.standalone && !o.pathSet {
		return errs.Invalid("--conf", "--standalone writes a complete file: say where with --conf (Debian's %s is a conffile that package upgrades would ask about)", layout.MosquittoConf)
	}
	cfg, err := o.config(ctx)
	if err != nil {
		return err
	}
	o.warn(cfg)
	// The listeners' own password files first: the broker does not start
	// on a password_file it can't open.
	if len(o.limited) > 0 {
		attr, fallback := layout.BrokerSecret(o.Sys)
		res, err := passwd.WriteListenerFiles(o.Sys, o.passwordFile, o.limited, attr)
		if err != nil {
			return err
		}
		if fallback != "" && res.Changed() {
			res.Warn("%s", fallback)
		}
		o.Take(res)
	}
	// What would stop the broker is worth saying now; it is not a reason to
	// refuse: `setup` writes the configuration before the users and the
	// certificates it names, and a failed restart is rolled back.
	for _, f := range conf.Check(o.Sys, cfg, o.path) {
		if f.Severity == conf.SevError {
			o.Warn("%s", f.Message)
		}
	}
	res, err := conf.Write(o.Sys, o.path, cfg)
	if err != nil {
		return err
	}
	o.Take(res)
	// Then the listener password files the configuration no longer names.
	if o.passwordFile != "" {
		var keep []string
		for _, f := range o.limited {
			keep = append(keep, f.Path)
		}
		res, err := passwd.RemoveListenerFiles(o.Sys, o.passwordFile, keep)
		if err != nil {
			return err
		}
		o.Take(res)
	}
	return o.Settle(ctx)
}

type confChecked struct {
	Path     string         `json:"path"`
	OK       bool           `json:"ok"`
	Findings []conf.Finding `json:"findings"`
}

func runConfCheck(ctx context.Context, o *confOptions) error {
	cfg, err := o.config(ctx)
	if err != nil {
		return err
	}
	findings := conf.Check(o.Sys, cfg, o.path)
	if findings == nil {
		findings = []conf.Finding{}
	}
	failed := conf.Failed(findings)
	o.Result(confChecked{Path: o.path, OK: !failed, Findings: findings}, func(w io.Writer) {
		for _, f := range findings {
			fmt.Fprintln(w, f.String())
		}
		nerr, nwarn := 0, 0
		for _, f := range findings {
			if f.Severity == conf.SevError {
				nerr++
			} else {
				nwarn++
			}
		}
		if failed {
			fmt.Fprintf(w, "conf check: %s: %d error(s), %d warning(s)\n", o.path, nerr, nwarn)
		} else {
			fmt.Fprintf(w, "conf check: %s: ok (%d warning(s))\n", o.path, nwarn)
		}
	})
	if failed {
		return errs.ErrCheckFailed
	}
	return nil
}
