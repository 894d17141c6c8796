package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

type serviceOptions struct {
	*App
	action string
}

var serviceActions = []struct{ name, short string }{
	{"status", "Show the unit's state, its listeners and its last journal lines (exit 1 when not active)"},
	{"enable", "Start the broker at boot (nothing when already enabled)"},
	{"start", "Start the broker and wait until it listens (nothing when already running)"},
	{"stop", "Stop the broker (nothing when already stopped)"},
	{"restart", "Restart the broker and wait until it listens"},
	{"reload", "Make the broker re-read its password file, ACL file and certificates (SIGHUP)"},
}

func newServiceCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Inspect and drive the mosquitto systemd unit",
		Long: `Drive the mosquitto unit through systemctl. enable, start, stop and reload
look at the unit first and run nothing when it is already as asked. start,
restart and reload wait (up to 30 s) until the unit is active and every
listener of the broker's configuration accepts a TCP connection. On any
failure the unit's last journal lines are printed.

Where systemd is not PID 1 (a container, CI) these commands say so and exit 4.`,
	}
	for _, act := range serviceActions {
		o := &serviceOptions{App: a, action: act.name}
		cmd.AddCommand(&cobra.Command{
			Use:     act.name,
			Short:   act.short,
			Example: "  sudo mosqprov service " + act.name,
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return runService(cmd.Context(), o)
			},
		})
	}
	return cmd
}

func runService(ctx context.Context, o *serviceOptions) error {
	s := o.Service
	var change system.Change
	var err error
	switch o.action {
	case "status":
		return runServiceStatus(ctx, o)
	case "enable":
		change, err = s.Enable(ctx)
	case "start":
		change, err = s.Start(ctx)
	case "stop":
		change, err = s.Stop(ctx)
	case "restart":
		change, err = s.Restart(ctx)
	case "reload":
		change, err = s.Reload(ctx)
	default:
		return flagErrorf("unknown service action %q", o.action)
	}
	if err != nil {
		return err
	}
	o.Add(change)
	return nil
}

func runServiceStatus(ctx context.Context, o *serviceOptions) error {
	st, err := o.Service.Status(ctx)
	if err != nil {
		return err
	}
	o.Result(st, func(w io.Writer) {
		state := st.ActiveState
		if st.SubState != "" {
			state += " (" + st.SubState + ")"
		}
		fmt.Fprintf(w, "%s: %s", st.Unit, state)
		if st.ActiveState == "active" && st.Since != "" {
			fmt.Fprintf(w, " since %s", st.Since)
		}
		if st.MainPID > 0 {
			fmt.Fprintf(w, ", pid %d", st.MainPID)
		}
		fmt.Fprintf(w, "\nat boot: %s\n", st.Enabled)
		for _, l := range st.Listeners {
			verdict := "accepting connections"
			if !l.Accepting {
				verdict = "NOT accepting connections"
			}
			fmt.Fprintf(w, "listener %s: %s\n", l.Addr, verdict)
		}
		if len(st.Journal) > 0 {
			fmt.Fprintln(w, "journal:")
			for _, line := range st.Journal {
				fmt.Fprintln(w, "  "+line)
			}
		}
	})
	if st.ActiveState != "active" {
		return errs.ErrCheckFailed
	}
	for _, l := range st.Listeners {
		if !l.Accepting {
			return errs.ErrCheckFailed
		}
	}
	return nil
}
