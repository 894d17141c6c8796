package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/backup"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// PassphraseEnv is the environment variable a backup's passphrase may come from.
const PassphraseEnv = "MOSQPROV_BACKUP_PASSPHRASE"

type backupOptions struct {
	*App
	Out             string
	Recipients      []string
	RecipientsFile  string
	PassphraseStdin bool
	WithDB          bool
	Force           bool
}

func newBackupCmd(a *App) *cobra.Command {
	o := &backupOptions{App: a}
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write one encrypted archive of everything needed to rebuild the broker",
		Long: `backup writes one archive of everything a new SD card needs to become this
broker again: the CA key and certificate, the server's and the clients'
certificates and keys, the password file, the ACL, mosqprov's configuration
files, broker.yaml and state.json; with --with-db also the broker's
persistence database (/var/lib/mosquitto/mosquitto.db).

The archive is encrypted with age: to a passphrase (a hidden prompt, asked
twice; --passphrase-stdin; or $` + PassphraseEnv + `) or to age recipients
(--recipient age1..., --recipients-file). It is written 0600, never into
the folders it backs up, and never over an existing file without --force.
Keep it off the Pi: it holds the CA key.`,
		Example: `  sudo mosqprov backup --out /media/usb/pi-broker.age            # prompts for a passphrase twice
  sudo mosqprov backup --recipient age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq --out pi.age
  printf '%s\n' "$PASSPHRASE" | sudo mosqprov backup --passphrase-stdin --with-db --out pi.age`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runBackup(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "the archive `FILE` to write, a path on this machine (default mosqprov-backup-HOST-DATE.age in the current folder)")
	f.StringArrayVar(&o.Recipients, "recipient", nil, "encrypt to this age `RECIPIENT` (age1...) instead of a passphrase; repeatable")
	f.StringVar(&o.RecipientsFile, "recipients-file", "", "encrypt to the age recipients in `FILE`, one a line")
	f.BoolVar(&o.PassphraseStdin, "passphrase-stdin", false, "read the passphrase from the first line of stdin")
	f.BoolVar(&o.WithDB, "with-db", false, "also back up the broker's persistence database "+backup.Database)
	f.BoolVar(&o.Force, "force", false, "replace an existing file at --out")
	return cmd
}

// backupReport is backup's json result (never a secret: paths and counts).
type backupReport struct {
	Path      string `json:"path"`
	Files     int    `json:"files"`
	Bytes     int    `json:"bytes"`
	Encrypted string `json:"encrypted_to"`
}

func runBackup(ctx context.Context, o *backupOptions) error {
	recipients, to, err := o.recipients()
	if err != nil {
		return err
	}
	archive, err := backup.Collect(o.Sys, o.WithDB)
	if err != nil {
		return err
	}
	out := o.Out
	if out == "" {
		out = defaultBackupName(o.Sys)
	}
	if err := backupTargetAllowed(o.Sys, out); err != nil {
		return err
	}
	host := system.OnHost(o.Sys)
	if _, err := host.Stat(out); err == nil && !o.Force {
		return errs.Invalid("--out", "%s exists: choose another name or add --force to replace it", out)
	}
	sealed, err := archive.Seal(recipients...)
	if err != nil {
		return err
	}
	files := 0
	for _, e := range archive.Manifest.Entries {
		if !e.Dir {
			files++
		}
	}
	act, err := host.WriteFile(out, sealed, system.Attr{Mode: 0o600})
	if err != nil {
		return err
	}
	o.Add(system.NewChange("backup", out, act, fmt.Sprintf("%d files, encrypted to %s", files, to)))
	o.Result(backupReport{Path: out, Files: files, Bytes: len(sealed), Encrypted: to}, func(w io.Writer) {
		if !o.Sys.IsDryRun() {
			fmt.Fprintf(w, "Backup written: %s (%d files). It holds the CA key: keep it off this machine.\n", out, files)
		}
	})
	return nil
}

// recipients are who the archive is encrypted to, and how to say it.
func (o *backupOptions) recipients() ([]age.Recipient, string, error) {
	var list []age.Recipient
	for _, r := range o.Recipients {
		parsed, err := backup.ParseRecipients("--recipient", strings.NewReader(r))
		if err != nil {
			return nil, "", errs.Invalid("--recipient", "%q is not an age recipient (age1...)", r)
		}
		list = append(list, parsed...)
	}
	if o.RecipientsFile != "" {
		f, err := os.Open(o.RecipientsFile)
		if err != nil {
			return nil, "", errs.Invalid("--recipients-file", "%v", err)
		}
		defer f.Close()
		parsed, err := backup.ParseRecipients("--recipients-file", f)
		if err != nil {
			return nil, "", errs.Invalid("--recipients-file", "%v", err)
		}
		list = append(list, parsed...)
	}
	if len(list) > 0 {
		if o.PassphraseStdin {
			return nil, "", errs.Invalid("--passphrase-stdin", "a passphrase and recipients don't mix: age encrypts to one or the other")
		}
		return list, fmt.Sprintf("%d age recipient(s)", len(list)), nil
	}
	pass, err := o.ReadSecretFrom("--passphrase-stdin", "backup passphrase", o.PassphraseStdin, PassphraseEnv, true)
	if err != nil {
		return nil, "", err
	}
	if len(pass) < 12 {
		o.Warn("the passphrase is %d characters: anyone who gets the archive can try guesses offline; use 12 or more", len(pass))
	}
	r, err := backup.PassphraseRecipient(pass)
	if err != nil {
		return nil, "", err
	}
	return []age.Recipient{r}, "a passphrase", nil
}

func defaultBackupName(sys system.System) string {
	date := sys.Now().UTC().Format("20060102")
	if h, err := sys.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, "/\\ \t\n") {
		return "mosqprov-backup-" + h + "-" + date + ".age"
	}
	return "mosqprov-backup-" + date + ".age"
}

// backupTargetAllowed refuses an archive inside the folders it backs up: a
// copy of the CA key next to the CA key is no backup, and restore would
// read it from the card that died.
func backupTargetAllowed(sys system.System, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return errs.Invalid("--out", "%v", err)
	}
	dir := filepath.Dir(abs)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	for _, backedUp := range []string{layout.StateDir, layout.MosquittoDir, filepath.Dir(backup.Database)} {
		folder := sys.HostPath(backedUp)
		if real, err := filepath.EvalSymlinks(folder); err == nil {
			folder = real
		}
		if dir == folder || strings.HasPrefix(dir+"/", folder+"/") {
			return errs.Invalid("--out", "%s is inside %s, which the backup holds: write it elsewhere (a USB stick, your PC)", out, backedUp)
		}
	}
	return nil
}

type restoreOptions struct {
	*App
	Identity        string
	PassphraseStdin bool
	Force           bool
}

func newRestoreCmd(a *App) *cobra.Command {
	o := &restoreOptions{App: a}
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a broker's files from a backup archive",
		Long: `restore opens an archive made by ` + "`mosqprov backup`" + ` and checks all of it
before it writes anything: age authenticates every chunk and the end of the
stream (a changed or cut archive is refused), and every member must match the
manifest's size and SHA-256, lie inside the folders mosqprov manages and be
owned by root or mosquitto. Then it writes each file with its owner and mode
(atomically, never through a symlink) and restarts the broker once.

Files that exist with other content are replaced only with --force. An
archive made --with-db also restores the broker's database: the broker is
stopped for it and started again. Follow with ` + "`mosqprov apply`" + `, which then
changes nothing.`,
		Example: `  sudo mosqprov restore /media/usb/pi-broker.age            # prompts for the passphrase
  sudo mosqprov restore --identity ~/.config/age/key.txt pi.age
  printf '%s\n' "$PASSPHRASE" | sudo mosqprov restore --passphrase-stdin --force pi.age`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRestore(cmd.Context(), o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Identity, "identity", "", "decrypt with the age identity in `FILE` (AGE-SECRET-KEY-1..., as age-keygen writes)")
	f.BoolVar(&o.PassphraseStdin, "passphrase-stdin", false, "read the passphrase from the first line of stdin")
	f.BoolVar(&o.Force, "force", false, "replace files that exist with other content")
	return cmd
}

func runRestore(ctx context.Context, o *restoreOptions, file string) error {
	var ids []age.Identity
	if o.Identity != "" {
		f, err := os.Open(o.Identity)
		if err != nil {
			return errs.Invalid("--identity", "%v", err)
		}
		defer f.Close()
		parsed, err := backup.ParseIdentities("--identity", f)
		if err != nil {
			return errs.Invalid("--identity", "%v", err)
		}
		ids = parsed
	} else {
		pass, err := o.ReadSecretFrom("--passphrase-stdin", "backup passphrase", o.PassphraseStdin, PassphraseEnv, false)
		if err != nil {
			return err
		}
		id, err := backup.PassphraseIdentity(pass)
		if err != nil {
			return errs.Invalid("passphrase", "%v", err)
		}
		ids = []age.Identity{id}
	}
	in, err := os.Open(file)
	if err != nil {
		return errs.Invalid("FILE", "%v", err)
	}
	defer in.Close()
	if info, err := in.Stat(); err == nil && info.IsDir() {
		return errs.Invalid("FILE", "%s is a folder, not a backup archive", file)
	}
	archive, err := backup.Open(in, ids...)
	if err != nil {
		return errs.Invalid("FILE", "%s: %v", file, strings.TrimPrefix(err.Error(), "restore: "))
	}
	differ, err := archive.Conflicts(o.Sys)
	if err != nil {
		return err
	}
	if len(differ) > 0 && !o.Force {
		shown := differ
		if len(shown) > 3 {
			shown = append(shown[:3:3], fmt.Sprintf("and %d more", len(differ)-3))
		}
		return errs.Invalid("restore", "%d files here differ from the backup (%s): add --force to replace them", len(differ), strings.Join(shown, ", "))
	}
	// The broker writes its database when it stops: it must be stopped
	// before the restored one is put in place, or it overwrites it.
	stopped := false
	if archive.HasDatabase() && !o.Sys.IsDryRun() {
		if ok, _ := o.Service.Manageable(); ok && o.Service.IsActive(ctx) {
			change, err := o.Service.Stop(ctx)
			if err != nil {
				return err
			}
			o.Add(change)
			stopped = true
		}
	}
	res, err := archive.Restore(o.Sys)
	if err != nil {
		return err
	}
	o.Take(res)
	if stopped {
		change, err := o.Service.Start(ctx)
		if err != nil {
			return err
		}
		o.Add(change)
		return nil
	}
	return o.Settle(ctx)
}
