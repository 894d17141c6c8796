package plan

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/status"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// desired is the spec resolved into each domain package's input, checked
// as a whole before anything is written.
type desired struct {
	users []passwd.Desired
	// removeUsers are users of the password file to take out (the status
	// identity once status_reader is off).
	removeUsers []string
	acl         []acl.Rule
	tls         bool
	// bridges are the spec's bridges with their passwords and TLS files
	// read, and those `mosqprov bridge add` added, kept.
	bridges []bridge.Bridge
	// installing: the package step installs (or, planning, would install)
	// the broker, so its unit can't be asked about yet.
	installing bool
}

func desire(s *spec.Spec, o Options) (*desired, error) {
	d := &desired{}
	for i, u := range s.Users {
		field := fmt.Sprintf("users[%d]", i)
		want := passwd.Desired{Name: u.Name, Hash: u.Hash}
		switch {
		case u.PasswordEnv != "":
			v, ok := o.LookupEnv(u.PasswordEnv)
			if !ok {
				return nil, s.At(field+".password_env", errs.Invalid(field+".password_env", "the environment variable %s (password of %q) is not set", u.PasswordEnv, u.Name))
			}
			want.Password = v
		case u.PasswordFile != "":
			pw, err := secretFromFile(o, s, field+".password_file", u.PasswordFile)
			if err != nil {
				return nil, err
			}
			want.Password = pw
		}
		if want.Hash == "" {
			// The message names the source, never the value.
			if want.Password == "" && u.PasswordEnv != "" {
				return nil, s.At(field+".password_env", errs.Invalid(field+".password_env", "the environment variable %s (password of %q) is empty; set it to the password", u.PasswordEnv, u.Name))
			}
			if err := passwd.ValidatePassword(want.Password); err != nil {
				return nil, s.At(field, errs.Invalid(field, "password of %q: %s", u.Name, errs.Problem(err)))
			}
		}
		d.users = append(d.users, want)
	}
	d.acl = specACL(s).Rules
	if s.StatusReader {
		d.acl = append(d.acl, status.Rules()...)
	}
	for _, l := range s.Listeners {
		if l.TLS() {
			d.tls = true
		}
	}
	// Render the configuration now, so a value the template refuses stops
	// the run before the first write.
	if _, err := conf.Render(confFor(s, true)); err != nil {
		return nil, s.At("listeners", err)
	}
	return d, nil
}

// specACL is the ACL the spec's acl entries make. (The status reader's
// rules are added to the file, but alone they make no ACL: without a rule
// of the spec's every client keeps every topic.)
func specACL(s *spec.Spec) *acl.File {
	f := &acl.File{}
	for _, rule := range s.ACL {
		f.Rules = append(f.Rules, rule.Rules()...)
	}
	return f
}

// confFor is the broker configuration the spec asks for. The password file
// is named only when it exists (an absent password_file stops the broker).
func confFor(s *spec.Spec, withPasswords bool) conf.Config {
	cfg := conf.Config{
		AllowAnonymous: s.AllowAnonymous,
		CertFile:       layout.ServerCert,
		KeyFile:        layout.ServerKey,
		CAFile:         layout.BrokerCACert,
		Tunables:       s.Broker.Tunables(),
	}
	if withPasswords {
		cfg.PasswordFile = layout.PasswordFile
	}
	cfg.ACLFile = specACL(s).ConfPath(layout.ACLFile)
	for _, l := range s.Listeners {
		cfg.Listeners = append(cfg.Listeners, s.ConfListener(l))
	}
	authPerListener(&cfg, s, withPasswords, conf.AuthForm20, "")
	return cfg
}

// packageStep installs mosquitto when missing (pkg/apt). Under a --root
// without a dpkg database (a bare folder, a test) there is nothing to ask,
// so it says so and goes on with the files.
func packageStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	if !s.Package.Installed() {
		return nil
	}
	if sys.Root() != "/" && !layout.Exists(sys, "/var/lib/dpkg/status") {
		r.add(StepPackage, system.Result{Changes: []system.Change{system.NewChange("package "+apt.Broker, "", system.Noop, "skipped: "+sys.Root()+" has no dpkg database")}})
		return nil
	}
	in := o.Installer
	if in == nil {
		in = apt.NewInstaller(sys)
	}
	installed, err := in.Ensure(ctx)
	if err != nil {
		return err
	}
	r.BrokerVersion = installed.Broker
	d.installing = installed.Changed()
	r.installs = d.installing && sys.IsDryRun()
	r.add(StepPackage, installed.Result)
	return nil
}

func caStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	if !d.tls {
		return nil
	}
	res, err := certs.EnsureCA(sys, certs.CAOptions{
		Paths:      certs.DefaultPaths(),
		CommonName: s.TLS.CAName,
		KeyType:    pki.KeyType(s.TLS.KeyType),
		Rand:       o.Rand,
	})
	if err != nil {
		return err
	}
	r.add(StepCA, res)
	return nil
}

func serverStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	if !d.tls {
		return nil
	}
	names, ips := s.CertNames()
	res, err := certs.EnsureServer(sys, certs.ServerOptions{
		Paths:       certs.DefaultPaths(),
		Names:       names,
		IPs:         ips,
		KeyType:     pki.KeyType(s.TLS.KeyType),
		Days:        s.TLS.ServerDays,
		RenewBefore: s.TLS.RenewBeforeDays,
		Rand:        o.Rand,
	})
	if err != nil {
		return err
	}
	r.add(StepServer, res)
	return nil
}

func usersStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	res, err := passwd.Converge(sys, layout.PasswordFile, d.users, passwd.Options{Prune: s.PruneUsers, Remove: d.removeUsers})
	if err != nil {
		return err
	}
	for _, u := range res.Users {
		if u.Status == passwd.Unmanaged {
			r.Unmanaged = append(r.Unmanaged, u.Name)
		}
	}
	r.add(StepUsers, res.Result)
	return nil
}

// aclStep writes the spec's rules, and only them: the ACL file is wholly
// the spec's. With no rules no ACL file is named in the configuration (an
// acl_file without rules denies everything), and an existing one is left.
func aclStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	if len(d.acl) == 0 {
		return nil
	}
	_, res, err := acl.Update(sys, layout.ACLFile, func(f *acl.File) error {
		f.Rules = append([]acl.Rule(nil), d.acl...)
		return nil
	})
	if err != nil {
		return err
	}
	r.add(StepACL, res)
	return nil
}

func confStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	withPasswords := layout.Exists(sys, layout.PasswordFile)
	cfg := confFor(s, withPasswords)
	cfg.CRLFile = certs.BrokerCRLFile(sys, certs.DefaultPaths())
	var warning string
	if s.PerListenerAuth() {
		// Each broker's own form: 2.1 deprecates 2.0's.
		var form, dir string
		form, dir, warning = authForm(ctx, sys, r)
		authPerListener(&cfg, s, withPasswords, form, dir)
	}
	// A listener's max_connections set, changed or removed takes a reload
	// on 2.1 (a restart on 2.0; conf.MaxConnectionsReloads).
	if withMaxConnections(sys, cfg) {
		if v, known := installedBroker(ctx, sys, r); known {
			cfg.MaxConnectionsOnReload = conf.MaxConnectionsReloads(v.Major, v.Minor)
		}
	}
	res, err := conf.Write(sys, layout.DropIn, cfg)
	if err != nil {
		return err
	}
	if warning != "" {
		res.Warn("%s", warning)
	}
	r.add(StepConf, res)
	return nil
}

func serviceStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	if !s.Service.Enabled() {
		return nil
	}
	svc := o.Service
	if svc == nil {
		svc = systemd.New(sys)
	}
	if ok, why := svc.Manageable(); !ok {
		r.add(StepService, system.Result{Changes: []system.Change{system.NewChange("service "+svc.Unit, "", system.Noop, "enable and start skipped: "+why)}})
		return nil
	}
	if d.installing && sys.IsDryRun() {
		// Debian's package enables and starts the unit when it installs it.
		r.add(StepService, system.Result{Changes: []system.Change{system.NewChange("service "+svc.Unit, "", system.Noop, "enabled and started by the package's install")}})
		return nil
	}
	var changes []system.Change
	c, err := svc.Enable(ctx)
	if err != nil {
		return err
	}
	changes = append(changes, c)
	if !svc.IsActive(ctx) {
		// A stopped broker reads every new file when it starts: starting it
		// is the one service action of this run, and nothing needs settling.
		c, err := svc.Start(ctx)
		if err != nil {
			return err
		}
		changes = append(changes, c)
		r.add(StepService, system.Result{Changes: changes})
		r.Need = system.NeedNothing
		return nil
	}
	r.add(StepService, system.Result{Changes: changes})
	return nil
}

// stateStep records a hash of every file the run manages (pkg/state), so
// doctor can tell a hand edit from what apply left. It writes only when a
// hash changed, so a converged apply still writes nothing.
func stateStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	var paths []string
	seen, written := map[string]bool{}, map[string]bool{}
	for _, c := range r.Changes() {
		if c.Changed {
			written[c.Path] = true
		}
		if c.Path == "" || seen[c.Path] {
			continue
		}
		seen[c.Path] = true
		if fi, err := sys.Stat(c.Path); err == nil && !fi.IsDir {
			paths = append(paths, c.Path)
		}
	}
	// Files this run writes already call for their reload or restart.
	var untouched []string
	for _, p := range paths {
		if !written[p] {
			untouched = append(untouched, p)
		}
	}
	need, err := unsettled(sys, untouched)
	if err != nil {
		return err
	}
	res, err := state.Record(sys, paths, r.BrokerVersion)
	if err != nil {
		return err
	}
	if need != system.NeedNothing {
		res.Needs(need)
		for i := range res.Changes {
			res.Changes[i].Detail = "files changed since the last complete apply; the broker may not have read them"
		}
	}
	r.add(StepState, res)
	return nil
}

// unsettled is what the broker needs for files that already are as the spec
// wants but differ from what the last complete apply recorded: an apply
// interrupted after its writes and before its reload or restart (killed,
// out of space) left them, and this run would otherwise see nothing to do
// and leave the broker on the old ones.
func unsettled(sys system.System, paths []string) (system.Need, error) {
	old, err := state.Load(sys)
	if err != nil || old == nil {
		return system.NeedNothing, err
	}
	need := system.NeedNothing
	for _, p := range paths {
		data, err := sys.ReadFile(p)
		if err != nil {
			continue
		}
		if recorded, ok := old.Files[p]; ok && recorded == state.Digest(data) {
			continue
		}
		need = need.Max(brokerNeed(p))
	}
	return need, nil
}

// brokerNeed is what the running broker needs when p changes.
func brokerNeed(p string) system.Need {
	switch {
	case p == layout.DropIn, p == layout.LimitsDropIn, p == bridge.File, strings.HasPrefix(p, bridge.Dir+"/"):
		// The broker reads bridges, and their TLS files, when it starts.
		return system.NeedRestart
	case strings.HasPrefix(p, layout.MosquittoDir+"/"):
		return system.NeedReload
	}
	return system.NeedNothing // the CA's own copy, which the broker never reads
}

// withMaxConnections reports whether a listener of cfg, or of the drop-in
// it replaces, sets max_connections: only then does the broker's version
// matter to what the drop-in needs.
func withMaxConnections(sys system.System, cfg conf.Config) bool {
	for _, l := range cfg.Listeners {
		if l.MaxConnections != 0 {
			return true
		}
	}
	old, err := sys.ReadFile(layout.DropIn)
	return err == nil && bytes.Contains(old, []byte("\nmax_connections "))
}
