package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/errs"
)

type installOptions struct {
	*App
	lockTimeout time.Duration
}

func newInstallCmd(a *App) *cobra.Command {
	o := &installOptions{App: a}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the mosquitto and mosquitto-clients packages with apt",
		Long: `Install the broker and its clients with apt-get when they are missing.
Installed packages run nothing and are reported unchanged with their version.

apt-get update runs first only when apt doesn't know the packages or its lists
are older than a day. apt's progress is shown as it runs. When another package
manager holds dpkg's lock (unattended-upgrades right after a Raspberry Pi
boots), install waits for it, up to --lock-timeout.

With --root DIR the root's own dpkg database is read; packages are never
installed under another root, because their maintainer scripts would run on
this host (install them with chroot DIR apt-get install).`,
		Example: `  sudo mosqprov install
  sudo mosqprov install --lock-timeout 30m   # right after a Raspberry Pi's first boot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstall(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.lockTimeout, "lock-timeout", 10*time.Minute, "how long to wait for another package manager to release dpkg's lock")
	return cmd
}

func runInstall(ctx context.Context, o *installOptions) error {
	if o.lockTimeout < 0 {
		return errs.Invalid("--lock-timeout", "%s is negative", o.lockTimeout)
	}
	in := apt.NewInstaller(o.Sys)
	in.LockTimeout = o.lockTimeout
	in.Notify = o.Infof
	if !o.JSON() {
		// Progress goes to stderr so stdout stays the report.
		in.Progress = o.IO.ErrOut
	}
	res, err := in.Ensure(ctx)
	// The commands that ran are reported even when a later one failed.
	o.Take(res.Result)
	if err != nil {
		return err
	}
	o.Result(res, func(w io.Writer) {
		if res.Broker != "" {
			fmt.Fprintf(w, "broker: mosquitto %s (%s series)\n", res.Broker, res.Series)
		}
	})
	return nil
}
