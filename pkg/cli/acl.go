package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/safe"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// aclOptions are the flags of the acl subcommands.
type aclOptions struct {
	*App
	file      string
	conf      string
	anonymous bool
	pattern   bool
	read      bool
	write     bool
	readwrite bool
	deny      bool
}

func newACLCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage the broker's access control list (/etc/mosquitto/acl)",
		Long: `Manage the ACL file. Once it has a rule, every client may use only the topics a
rule grants it, and deny rules win over grants. User rules name a user of the
password file (with mutual TLS, the CN of the client certificate); pattern
rules apply to every client with %u and %c standing for its user name and
client id; anonymous rules apply to clients without a user name.

The configuration references the ACL file (acl_file) only while it has rules:
these commands add or drop that line in the mosqprov configuration (--conf), and
a running broker is reloaded, which drops no client.`,
	}
	cmd.AddCommand(newACLAllowCmd(a), newACLDenyCmd(a), newACLPatternCmd(a), newACLRmCmd(a), newACLListCmd(a))
	return cmd
}

func bindACLFileFlags(cmd *cobra.Command, o *aclOptions) {
	cmd.Flags().StringVar(&o.file, "file", layout.ACLFile, "the ACL `FILE`")
	cmd.Flags().StringVar(&o.conf, "conf", layout.DropIn, "the mosqprov configuration `FILE` whose acl_file line follows the rules")
}

func bindAccessFlags(cmd *cobra.Command, o *aclOptions, deny bool) {
	cmd.Flags().BoolVar(&o.read, "read", false, "grant reading (subscribing and receiving)")
	cmd.Flags().BoolVar(&o.write, "write", false, "grant writing (publishing)")
	cmd.Flags().BoolVar(&o.readwrite, "readwrite", false, "grant reading and writing")
	if deny {
		cmd.Flags().BoolVar(&o.deny, "deny", false, "deny, whatever other rules grant")
	}
}

// access is the one access flag given.
func (o *aclOptions) access(allowDeny bool) (acl.Access, error) {
	var got []acl.Access
	for _, f := range []struct {
		set bool
		a   acl.Access
	}{{o.read, acl.AccessRead}, {o.write, acl.AccessWrite}, {o.readwrite, acl.AccessReadWrite}, {o.deny, acl.AccessDeny}} {
		if f.set {
			got = append(got, f.a)
		}
	}
	want := "--read, --write or --readwrite"
	if allowDeny {
		want = "--read, --write, --readwrite or --deny"
	}
	if len(got) != 1 {
		return "", flagErrorf("give exactly one of %s", want)
	}
	return got[0], nil
}

// subject reads [USER] TOPIC: with --anonymous there is no user.
func (o *aclOptions) subject(args []string, topicOptional bool) (acl.Rule, error) {
	r := acl.Rule{Kind: acl.KindUser}
	min, max := 2, 2
	subject, topic := "USER", "TOPIC"
	if o.anonymous {
		r.Kind, min, max, subject = acl.KindAnonymous, 1, 1, "--anonymous"
	}
	if topicOptional {
		min--
		topic = "[TOPIC]"
	}
	usage := subject + " " + topic
	if len(args) < min || len(args) > max {
		return r, flagErrorf("expected %s, got %d argument(s)", usage, len(args))
	}
	if !o.anonymous {
		r.User, args = args[0], args[1:]
		if err := acl.ValidateUser(r.User); err != nil {
			return r, err
		}
	}
	if len(args) > 0 {
		r.Topic = args[0]
	}
	return r, nil
}

func newACLAllowCmd(a *App) *cobra.Command {
	o := &aclOptions{App: a}
	cmd := &cobra.Command{
		Use:   "allow (USER | --anonymous) TOPIC (--read | --write | --readwrite)",
		Short: "Grant a user (or anonymous clients) access to a topic filter",
		Example: `  sudo mosqprov acl allow blinds 'home/blinds/#' --readwrite
  sudo mosqprov acl allow phone 'home/+/state' --read
  sudo mosqprov acl allow --anonymous 'public/#' --read`,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.subject(args, false)
			if err != nil {
				return err
			}
			if r.Access, err = o.access(false); err != nil {
				return err
			}
			return runACLSet(cmd.Context(), o, r)
		},
	}
	cmd.Flags().BoolVar(&o.anonymous, "anonymous", false, "the rule is for clients without a user name")
	bindAccessFlags(cmd, o, false)
	bindACLFileFlags(cmd, o)
	bindNoReload(cmd, &o.noReload)
	return cmd
}

func newACLDenyCmd(a *App) *cobra.Command {
	o := &aclOptions{App: a}
	cmd := &cobra.Command{
		Use:     "deny (USER | --anonymous) TOPIC",
		Short:   "Deny a user (or anonymous clients) a topic filter, whatever other rules grant",
		Example: `  sudo mosqprov acl deny phone 'home/alarm/#'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.subject(args, false)
			if err != nil {
				return err
			}
			r.Access = acl.AccessDeny
			return runACLSet(cmd.Context(), o, r)
		},
	}
	cmd.Flags().BoolVar(&o.anonymous, "anonymous", false, "the rule is for clients without a user name")
	bindACLFileFlags(cmd, o)
	bindNoReload(cmd, &o.noReload)
	return cmd
}

func newACLPatternCmd(a *App) *cobra.Command {
	o := &aclOptions{App: a}
	cmd := &cobra.Command{
		Use:   "pattern TOPIC (--read | --write | --readwrite | --deny)",
		Short: "Add a rule for every client, with %u (user name) and %c (client id) in the topic",
		Example: `  sudo mosqprov acl pattern 'users/%u/#' --readwrite
  sudo mosqprov acl pattern 'devices/%c/status' --write`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			access, err := o.access(true)
			if err != nil {
				return err
			}
			return runACLSet(cmd.Context(), o, acl.Rule{Kind: acl.KindPattern, Access: access, Topic: args[0]})
		},
	}
	bindAccessFlags(cmd, o, true)
	bindACLFileFlags(cmd, o)
	bindNoReload(cmd, &o.noReload)
	return cmd
}

func newACLRmCmd(a *App) *cobra.Command {
	o := &aclOptions{App: a}
	cmd := &cobra.Command{
		Use:   "rm (USER [TOPIC] | --anonymous [TOPIC] | --pattern TOPIC)",
		Short: "Remove rules: one topic's, or all of a user's",
		Example: `  sudo mosqprov acl rm phone 'home/+/state'
  sudo mosqprov acl rm phone
  sudo mosqprov acl rm --pattern 'users/%u/#'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.pattern && o.anonymous {
				return flagErrorf("--pattern and --anonymous can't be used together")
			}
			var r acl.Rule
			if o.pattern {
				if len(args) != 1 {
					return flagErrorf("expected --pattern TOPIC, got %d argument(s)", len(args))
				}
				r = acl.Rule{Kind: acl.KindPattern, Topic: args[0]}
			} else {
				var err error
				if r, err = o.subject(args, true); err != nil {
					return err
				}
			}
			return runACLRemove(cmd.Context(), o, r)
		},
	}
	cmd.Flags().BoolVar(&o.anonymous, "anonymous", false, "remove rules for clients without a user name")
	cmd.Flags().BoolVar(&o.pattern, "pattern", false, "remove a pattern rule")
	bindACLFileFlags(cmd, o)
	bindNoReload(cmd, &o.noReload)
	return cmd
}

func newACLListCmd(a *App) *cobra.Command {
	o := &aclOptions{App: a}
	cmd := &cobra.Command{
		Use:   "list [USER]",
		Short: "List the rules, or only those of USER",
		Example: `  sudo mosqprov acl list
  sudo mosqprov acl list phone -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := ""
			if len(args) == 1 {
				user = args[0]
			}
			return runACLList(cmd.Context(), o, user)
		},
	}
	bindACLFileFlags(cmd, o)
	return cmd
}

func (o *aclOptions) validatePaths() error {
	if err := conf.ValidatePath("--file", o.file, false); err != nil {
		return err
	}
	return conf.ValidatePath("--conf", o.conf, false)
}

func runACLSet(ctx context.Context, o *aclOptions, r acl.Rule) error {
	if err := o.validatePaths(); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	return o.update(ctx, r.String(), func(f *acl.File) (string, error) {
		_, err := f.Set(r)
		return "", err
	})
}

func runACLRemove(ctx context.Context, o *aclOptions, r acl.Rule) error {
	if err := o.validatePaths(); err != nil {
		return err
	}
	if r.Topic != "" {
		if err := acl.ValidateTopic(r.Topic); err != nil {
			return err
		}
	}
	what := fmt.Sprintf("%s %s", subjectOf(r), r.Topic)
	if r.Topic == "" {
		what = fmt.Sprintf("every rule of user %s", r.User)
		if r.Kind == acl.KindAnonymous {
			what = "every anonymous rule"
		}
	}
	// Removing from a file that isn't there removes nothing, so it must not
	// create one (as user rm leaves a missing password file missing).
	if _, err := o.Sys.Stat(o.file); errors.Is(err, fs.ErrNotExist) {
		o.Add(system.NewChange("ACL file", o.file, system.Noop, what+": no ACL file"))
		return nil
	}
	return o.update(ctx, what, func(f *acl.File) (string, error) {
		if f.Remove(r.Kind, r.User, r.Topic) == 0 {
			return "no matching rule", nil
		}
		return "", nil
	})
}

func subjectOf(r acl.Rule) string {
	switch r.Kind {
	case acl.KindUser:
		return "user " + r.User
	case acl.KindPattern:
		return "pattern"
	}
	return "anonymous"
}

// update edits the ACL file, keeps the configuration's acl_file line in
// step with it, and reloads a running broker once.
func (o *aclOptions) update(ctx context.Context, what string, edit func(*acl.File) (string, error)) error {
	if _, fallback := layout.BrokerSecret(o.Sys); fallback != "" {
		o.Warn("%s", fallback)
	}
	var note string
	f, res, err := acl.Update(o.Sys, o.file, func(f *acl.File) error {
		var err error
		note, err = edit(f)
		return err
	})
	if err != nil {
		return err
	}
	res.Changes[0].Detail = what
	if note != "" {
		res.Changes[0].Detail += ": " + note
	}
	o.Take(res)
	if err := o.syncConf(f); err != nil {
		return err
	}
	return o.Settle(ctx)
}

// syncConf adds acl_file to the mosqprov configuration when the ACL file
// has rules and drops it when it has none (an acl_file without rules denies
// every client everything). Other configurations are left alone, with a word.
func (o *aclOptions) syncConf(f *acl.File) error {
	data, err := o.Sys.ReadFile(o.conf)
	if errors.Is(err, fs.ErrNotExist) {
		if len(f.Rules) > 0 {
			o.Warn("%s does not exist yet: the broker applies the ACL file once `mosqprov conf write` has written it", o.conf)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", o.conf, err)
	}
	if !conf.IsManaged(data) {
		o.Warn("%s is not managed by mosqprov: make sure the broker's configuration names acl_file %s only while it has rules", o.conf, o.file)
		return nil
	}
	cfg, err := conf.Parse(data)
	if err != nil {
		// The ACL file is written already; say what is left to do.
		o.Warn("%s was edited by hand (%v): run `mosqprov conf write` so its acl_file line follows the ACL file", o.conf, err)
		return nil
	}
	if cfg.ACLFile != "" && cfg.ACLFile != o.file {
		// Another ACL file is the broker's: pointing it at this one would
		// silently swap every rule.
		o.Warn("%s names acl_file %s, not %s: left as it is (edit that file with --file %s)", o.conf, cfg.ACLFile, o.file, cfg.ACLFile)
		return nil
	}
	if hasAnonymous(f) && !cfg.AllowAnonymous {
		o.Warn("anonymous rules apply only with allow_anonymous true (`mosqprov conf write --allow-anonymous`)")
	}
	want := f.ConfPath(o.file)
	if cfg.ACLFile == want {
		return nil
	}
	cfg.ACLFile = want
	res, err := conf.Write(o.Sys, o.conf, cfg)
	if err != nil {
		return err
	}
	res.Changes[0].Detail = "acl_file " + o.file + " added"
	if want == "" {
		res.Changes[0].Detail = "acl_file dropped: the ACL file has no rules left"
	}
	o.Take(res)
	return nil
}

func hasAnonymous(f *acl.File) bool {
	for _, r := range f.Rules {
		if r.Kind == acl.KindAnonymous {
			return true
		}
	}
	return false
}

type aclListed struct {
	File  string     `json:"file"`
	Rules []acl.Rule `json:"rules"`
}

func runACLList(_ context.Context, o *aclOptions, user string) error {
	if err := o.validatePaths(); err != nil {
		return err
	}
	if user != "" {
		if err := acl.ValidateUser(user); err != nil {
			return err
		}
	}
	f, err := acl.Load(o.Sys, o.file)
	if err != nil {
		return err
	}
	rules := []acl.Rule{}
	for _, r := range f.Sorted() {
		if user == "" || r.User == user {
			rules = append(rules, r)
		}
	}
	o.Result(aclListed{File: o.file, Rules: rules}, func(w io.Writer) {
		if len(rules) == 0 {
			fmt.Fprintf(w, "no rules in %s\n", o.file)
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tUSER\tACCESS\tTOPIC")
		for _, r := range rules {
			u := r.User
			if u == "" {
				u = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Kind, safe.Escape(u), r.Access, safe.Escape(r.Topic))
		}
		tw.Flush()
	})
	return nil
}
