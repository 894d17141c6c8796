package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/safe"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// userOptions are the flags of the user subcommands.
type userOptions struct {
	*App
	file          string
	hash          string
	iterations    int
	passwordStdin bool
	// set when --hash / --iterations were given: only then is a stored hash
	// of another type or count replaced.
	hashSet, iterationsSet bool
}

const iterationsHelp = `PBKDF2 iterations for new hashes; 1000 is what mosquitto_passwd 2.1
writes, 2.0's writes 101. The broker runs them on every login, so more
iterations cost every client connect CPU time on the broker (noticeable on a
Raspberry Pi), and cost an attacker who stole the password file the same per
guess. A stored hash that verifies is kept unless this flag is given`

func newUserCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the broker's users (the password file, /etc/mosquitto/passwd)",
		Long: `Manage the Mosquitto password file. Passwords never come from the command
line: they come from a hidden prompt (asked twice) when stdin is a terminal,
else from --password-stdin (the first line of stdin) or the MOSQPROV_PASSWORD
environment variable.

mosqprov writes Mosquitto's own hash formats ($7$ PBKDF2-SHA512, or $6$ with
--hash sha512 for brokers older than 2.0), keeps comments and other lines of
the file as they are, never writes a user twice, and reports lines the broker
ignores or rejects (crypt(3) "$6$" hashes, plaintext, lines without ':',
duplicates). After a change a running broker is reloaded (SIGHUP), which
drops no client.`,
	}
	cmd.AddCommand(newUserAddCmd(a), newUserRmCmd(a), newUserListCmd(a), newUserVerifyCmd(a),
		newUserImportCmd(a), newUserHashCmd(a))
	return cmd
}

func bindUserFile(cmd *cobra.Command, o *userOptions) {
	cmd.Flags().StringVar(&o.file, "file", layout.PasswordFile, "the password `FILE`")
	markTargetPath(cmd.Flags(), "file")
}

// bindNoReload binds --no-reload, for commands whose change the broker
// takes on a reload: several edits in a row, then one reload.
func bindNoReload(cmd *cobra.Command, noReload *bool) {
	cmd.Flags().BoolVar(noReload, "no-reload", false, "don't reload a running broker after a change")
}

func bindHashFlags(cmd *cobra.Command, o *userOptions) {
	cmd.Flags().StringVar(&o.hash, "hash", string(passwd.PBKDF2), "hash type: pbkdf2 ($7$) or sha512 ($6$, for brokers older than 2.0)")
	cmd.Flags().IntVar(&o.iterations, "iterations", passwd.DefaultIterations, iterationsHelp)
}

func bindPasswordStdin(cmd *cobra.Command, o *userOptions) {
	cmd.Flags().BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
}

// hashOptions turns --hash and --iterations into Converge options,
// validated before anything is read or written.
func (o *userOptions) hashOptions(cmd *cobra.Command) (passwd.Options, error) {
	o.hashSet = cmd.Flags().Changed("hash")
	o.iterationsSet = cmd.Flags().Changed("iterations")
	var opts passwd.Options
	algo, err := passwd.ParseAlgo(o.hash)
	if err != nil {
		return opts, err
	}
	if o.hashSet {
		opts.Algo = algo
	}
	if o.iterationsSet {
		if algo != passwd.PBKDF2 {
			return opts, flagErrorf("--iterations applies only to --hash pbkdf2")
		}
		if o.iterations < 1 || o.iterations > passwd.MaxIterations {
			return opts, flagErrorf("--iterations: %d is outside 1..%d", o.iterations, passwd.MaxIterations)
		}
		opts.Iterations = o.iterations
	}
	return opts, nil
}

func newUserAddCmd(a *App) *cobra.Command {
	o := &userOptions{App: a}
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user, or change a user's password",
		Long: `Add a user, or change a user's password. When the user exists and the stored
hash already verifies the password, the file is left untouched (same salt,
same bytes, same modification time) and the user is reported unchanged.`,
		Example: `  sudo mosqprov user add sensor1                          # prompts twice
  printf '%s\n' "$PW" | sudo mosqprov user add sensor1 --password-stdin
  export MOSQPROV_PASSWORD; sudo --preserve-env=MOSQPROV_PASSWORD mosqprov user add app --iterations 1000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := o.hashOptions(cmd)
			if err != nil {
				return err
			}
			return runUserAdd(cmd.Context(), o, args[0], opts)
		},
	}
	bindUserFile(cmd, o)
	bindHashFlags(cmd, o)
	bindPasswordStdin(cmd, o)
	bindNoReload(cmd, &o.noReload)
	return cmd
}

// userReport is the json result of add, rm and import.
type userReport struct {
	Path     string              `json:"path"`
	Users    []passwd.UserResult `json:"users"`
	Added    int                 `json:"added"`
	Updated  int                 `json:"updated"`
	Removed  int                 `json:"removed"`
	Same     int                 `json:"unchanged"`
	Findings []passwd.Finding    `json:"findings,omitempty"`
}

func runUserAdd(ctx context.Context, o *userOptions, name string, opts passwd.Options) error {
	if err := passwd.ValidateName(name); err != nil {
		return err
	}
	if name == spec.StatusUser {
		// apply takes it out of the password file when status_reader is off.
		return errs.Invalid("username", "%q is reserved for mosqprov status's own identity: set status_reader: true in broker.yaml instead", name)
	}
	pw, err := o.ReadSecret("password for "+name, o.passwordStdin, PasswordEnv, true)
	if err != nil {
		return err
	}
	opts.SkipUnmanaged = !o.JSON()
	res, err := passwd.Converge(o.Sys, o.file, []passwd.Desired{{Name: name, Password: pw}}, opts)
	if err != nil {
		return err
	}
	return o.finishUsers(ctx, res, []string{name}, nil)
}

// finishUsers reports a Converge result: one line per named user (or the
// file's line with counts), warnings, findings, then the reload.
func (o *userOptions) finishUsers(ctx context.Context, res passwd.Result, names []string, text func(io.Writer)) error {
	// The file's line stands for the users when none is named one by one
	// (import) or the owner or mode was fixed while every named user stayed.
	step := res.Result
	step.Changes = nil
	shown := map[string]bool{}
	userChanged := false
	for _, u := range res.Users {
		if !slices.Contains(names, u.Name) {
			continue
		}
		action := map[passwd.Status]system.Action{passwd.Added: system.Create, passwd.Updated: system.Update, passwd.Removed: system.Delete}[u.Status]
		if action == "" {
			action = system.Noop
		}
		userChanged = userChanged || action.Changed()
		shown[u.Name] = true
		step.Add(system.NewChange("user "+u.Name, res.Path, action, u.Detail))
	}
	if len(shown) == 0 || (res.Action.Changed() && !userChanged) {
		step.Add(res.Changes...)
	}
	o.Take(step)
	for _, f := range res.Findings {
		o.Warn("%s: %s", res.Path, f)
	}
	o.Result(userReport{
		Path: res.Path, Users: res.Users, Findings: res.Findings,
		Added: res.Count(passwd.Added), Updated: res.Count(passwd.Updated),
		Removed: res.Count(passwd.Removed), Same: res.Count(passwd.Unchanged),
	}, text)
	return o.Settle(ctx)
}

func newUserRmCmd(a *App) *cobra.Command {
	o := &userOptions{App: a}
	cmd := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a user",
		Long:    "Remove every line of a user from the password file. Removing a user that isn't there changes nothing.",
		Example: "  sudo mosqprov user rm sensor1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUserRm(cmd.Context(), o, args[0])
		},
	}
	bindUserFile(cmd, o)
	bindNoReload(cmd, &o.noReload)
	return cmd
}

func runUserRm(ctx context.Context, o *userOptions, name string) error {
	// Text output names only this user; json lists every user of the file.
	res, err := passwd.Converge(o.Sys, o.file, nil, passwd.Options{Remove: []string{name}, SkipUnmanaged: !o.JSON()})
	if err != nil {
		return err
	}
	return o.finishUsers(ctx, res, []string{name}, nil)
}

func newUserListCmd(a *App) *cobra.Command {
	o := &userOptions{App: a}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List users with their hash type and iterations",
		Example: "  sudo mosqprov user list\n  sudo mosqprov user list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUserList(cmd.Context(), o)
		},
	}
	bindUserFile(cmd, o)
	return cmd
}

// userList is the json result of user list.
type userList struct {
	Path     string           `json:"path"`
	Users    []passwd.User    `json:"users"`
	Findings []passwd.Finding `json:"findings,omitempty"`
}

// readPasswordFile reads and parses the password file; a missing file is an
// empty one.
func (o *userOptions) readPasswordFile() (*passwd.File, bool, error) {
	data, err := o.Sys.ReadFile(o.file)
	if errors.Is(err, fs.ErrNotExist) {
		return &passwd.File{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read password file %s: %w", o.file, err)
	}
	f, err := passwd.Parse(data)
	var ie *errs.InputError
	if errors.As(err, &ie) {
		return nil, true, errs.Invalid(o.file, "%s", ie.Problem)
	}
	return f, true, nil
}

func runUserList(_ context.Context, o *userOptions) error {
	f, exists, err := o.readPasswordFile()
	if err != nil {
		return err
	}
	if !exists {
		o.Warn("%s does not exist: no users", o.file)
	}
	list := userList{Path: o.file, Users: f.Users(), Findings: f.Inspect()}
	if list.Users == nil {
		list.Users = []passwd.User{}
	}
	for _, fd := range list.Findings {
		o.Warn("%s: %s", o.file, fd)
	}
	o.Result(list, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tHASH\tITERATIONS")
		for _, u := range list.Users {
			it := "-"
			if u.Iterations > 0 {
				it = fmt.Sprint(u.Iterations)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", safe.Escape(u.Name), u.Hash, it)
		}
		tw.Flush()
	})
	return nil
}

func newUserVerifyCmd(a *App) *cobra.Command {
	o := &userOptions{App: a}
	cmd := &cobra.Command{
		Use:   "verify NAME",
		Short: "Check a user's password against the password file (exit 0 when it matches, 1 when not)",
		Long: `Check a password against the line the broker uses for NAME (with duplicate
lines, the last valid one). Exit 0 when it matches, 1 when it doesn't or the
user can't log in at all.`,
		Example: `  printf '%s\n' "$PW" | sudo mosqprov user verify sensor1 --password-stdin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUserVerify(cmd.Context(), o, args[0])
		},
	}
	bindUserFile(cmd, o)
	bindPasswordStdin(cmd, o)
	return cmd
}

// userVerifyResult is the json result of user verify.
type userVerifyResult struct {
	User   string `json:"user"`
	Match  bool   `json:"match"`
	Reason string `json:"reason,omitempty"`
}

func runUserVerify(_ context.Context, o *userOptions, name string) error {
	// Any name the file can hold can be checked, even one add refuses.
	if err := passwd.ValidateLineName(name); err != nil {
		return err
	}
	f, _, err := o.readPasswordFile()
	if err != nil {
		return err
	}
	pw, err := o.ReadSecret("password for "+name, o.passwordStdin, PasswordEnv, false)
	if err != nil {
		return err
	}
	if err := passwd.ValidatePassword(pw); err != nil {
		return err
	}
	r := userVerifyResult{User: name}
	if l, ok := f.Lookup(name); !ok {
		r.Reason = "not in " + o.file
	} else if h, err := passwd.ParseHash(l.Hash); err != nil {
		r.Reason = fmt.Sprintf("line %d can't log in: %v", l.Num, err)
	} else if h.Verify(pw) {
		r.Match = true
	} else {
		r.Reason = "password does not match"
	}
	o.Result(r, func(w io.Writer) {
		if r.Match {
			fmt.Fprintf(w, "user %s: password matches\n", name)
		} else {
			fmt.Fprintf(w, "user %s: %s\n", name, r.Reason)
		}
	})
	if !r.Match {
		return errs.ErrCheckFailed
	}
	return nil
}

func newUserImportCmd(a *App) *cobra.Command {
	o := &userOptions{App: a}
	cmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Add or update many users from name:password lines, in one write",
		Long: `Read lines name:password (the password is everything after the first ':';
blank lines and lines starting with '#' are skipped) from FILE, or stdin for
-, and add or update those users in one atomic write. Hashing runs on every
core. Each user is idempotent: one whose stored hash verifies its password is
kept as it is. Prints how many were added, updated and unchanged.`,
		Example: "  sudo mosqprov user import users.txt && shred -u users.txt\n  generate-users | sudo mosqprov user import -",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := o.hashOptions(cmd)
			if err != nil {
				return err
			}
			return runUserImport(cmd.Context(), o, args[0], opts)
		},
	}
	bindUserFile(cmd, o)
	bindHashFlags(cmd, o)
	bindNoReload(cmd, &o.noReload)
	return cmd
}

func runUserImport(ctx context.Context, o *userOptions, src string, opts passwd.Options) error {
	var data []byte
	var err error
	name := src
	if src == "-" {
		name = "stdin"
		data, err = system.ReadInput("FILE", name, o.IO.In, system.MaxImport)
	} else {
		// The import list is the caller's own file, not a path on the
		// target system, so it is read as given, not under --root.
		data, err = system.ReadInputFile("FILE", src, system.MaxImport)
	}
	if errs.IsInput(err) {
		return err
	}
	if err != nil {
		// The file the user named is bad input (exit 3), like cert import's.
		return errs.Invalid("FILE", "can't read %s: %v", name, errs.PathCause(err))
	}
	want, err := passwd.ParseImport(name, data)
	if err != nil {
		return err
	}
	opts.SkipUnmanaged = !o.JSON()
	res, err := passwd.Converge(o.Sys, o.file, want, opts)
	if err != nil {
		return err
	}
	return o.finishUsers(ctx, res, nil, func(w io.Writer) {
		fmt.Fprintf(w, "added %d, updated %d, unchanged %d\n", res.Count(passwd.Added), res.Count(passwd.Updated), res.Count(passwd.Unchanged))
	})
}

func newUserHashCmd(a *App) *cobra.Command {
	o := &userOptions{App: a}
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Print a password hash for broker.yaml, so no plaintext is kept",
		Long: `Hash a password (from the prompt, --password-stdin or MOSQPROV_PASSWORD) and
print the hash, for a broker.yaml kept in git that must hold no plaintext.
Each run uses a new salt, so the output differs every time.`,
		Example: "  mosqprov user hash\n  printf '%s\\n' \"$PW\" | mosqprov user hash --password-stdin --hash sha512",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := o.hashOptions(cmd)
			if err != nil {
				return err
			}
			return runUserHash(cmd.Context(), o, opts)
		},
	}
	bindHashFlags(cmd, o)
	bindPasswordStdin(cmd, o)
	return cmd
}

func runUserHash(_ context.Context, o *userOptions, opts passwd.Options) error {
	algo, err := passwd.ParseAlgo(o.hash)
	if err != nil {
		return err
	}
	pw, err := o.ReadSecret("password", o.passwordStdin, PasswordEnv, true)
	if err != nil {
		return err
	}
	h, err := passwd.New(pw, algo, opts.Iterations)
	if err != nil {
		return err
	}
	s := h.String()
	o.Result(map[string]string{"hash": s}, func(w io.Writer) { fmt.Fprintln(w, s) })
	return nil
}
