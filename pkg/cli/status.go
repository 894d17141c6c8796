package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/probe"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/status"
	"github.com/mosqprov/mosqprov/pkg/system"
)

type statusOptions struct {
	*App
	SpecFile string
	Watch    bool
	Interval time.Duration
	Wait     time.Duration
}

func newStatusCmd(a *App) *cobra.Command {
	o := &statusOptions{App: a}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "A live look at the running broker: clients, traffic, bridges, certificates, warnings",
		Long: `Read what the broker publishes under $SYS (version, uptime, clients connected,
messages and bytes per second in and out, retained messages, subscriptions, each
bridge's state), the days left on the server certificate and the CA, and the last
warnings of the broker's log.

It logs in on a loopback listener as mosqprov's own identity, mosqprov-status,
which may only read $SYS/# (set status_reader: true in broker.yaml and apply;
its password is in /etc/mosqprov/status.secret, root's), so it needs root.`,
		Example: `  sudo mosqprov status
  sudo mosqprov status --watch
  sudo mosqprov status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runStatus(cmd.Context(), o) },
	}
	cmd.Flags().StringVarP(&o.SpecFile, "file", "f", "", "broker.yaml to find the listeners in (default /etc/mosqprov/broker.yaml)")
	cmd.Flags().BoolVar(&o.Watch, "watch", false, "refresh in place until q or Ctrl-C (terminal only)")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "time between refreshes with --watch")
	cmd.Flags().DurationVar(&o.Wait, "wait", 1500*time.Millisecond, "how long to listen to $SYS for each look")
	return cmd
}

func runStatus(ctx context.Context, o *statusOptions) error {
	if o.Watch && o.JSON() {
		return errs.Invalid("--watch", "refreshes a terminal; with -o json run status once per look")
	}
	if o.Watch && !stdoutIsTerminal(o.IO.Out) {
		return errs.Invalid("--watch", "needs a terminal on standard output")
	}
	if o.Interval < 500*time.Millisecond {
		return errs.Invalid("--interval", "%s is shorter than 500ms", o.Interval)
	}
	if o.Wait <= 0 || o.Wait > time.Minute {
		return errs.Invalid("--wait", "%s is not between 0 and 1m", o.Wait)
	}
	s, err := spec.Load(o.Sys, o.SpecFile)
	if err != nil {
		return err
	}
	url, tlsConf, err := statusTarget(o.Sys, s)
	if err != nil {
		return err
	}
	pw, err := status.ReadSecret(o.Sys)
	if err != nil {
		return err
	}
	look := func(ctx context.Context) (*status.Report, error) {
		opts := mqtt.NewClientOptions().SetUsername(status.User).SetPassword(pw)
		if tlsConf != nil {
			opts.SetTLSConfig(tlsConf)
		}
		sysVals, err := status.Read(ctx, url, opts, o.Wait)
		if err != nil {
			return nil, err
		}
		r := &status.Report{}
		r.FromSys(sysVals)
		if entries, err := certs.Status(o.Sys, certs.DefaultPaths(), 30); err == nil {
			for _, e := range entries {
				c := &status.Cert{Path: e.Path, DaysLeft: e.DaysLeft, Present: e.Present}
				switch e.Kind {
				case "server":
					r.ServerCert = c
				case "ca":
					r.CACert = c
				}
			}
		}
		r.Warnings = status.Warnings(brokerLogLines(ctx, o.Sys), 5)
		return r, nil
	}
	if !o.Watch {
		r, err := look(ctx)
		if err != nil {
			return err
		}
		o.Result(r, func(w io.Writer) { printBrokerStatus(w, r) })
		return nil
	}
	return watchStatus(ctx, o, look)
}

func stdoutIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// statusListener is the listener the status identity logs in on: the
// spec's plain MQTT listener when it is reachable on loopback, else its MQTT
// over TLS one without mutual TLS (verified against the broker's CA under
// the spec's host name). verify reads bridge states through it too.
func statusListener(s *spec.Spec) (probe.Target, error) {
	for _, l := range s.Listeners {
		if l.Type == spec.MQTT && (conf.IsWildcard(l.Bind) || l.Bind == "127.0.0.1") {
			return probe.Target{Name: "status", Scheme: probe.MQTT, Host: "127.0.0.1", Port: l.Port}, nil
		}
	}
	for _, l := range s.Listeners {
		if l.Type == spec.MQTTS && (conf.IsWildcard(l.Bind) || l.Bind == "127.0.0.1") && !l.MutualTLS {
			return probe.Target{Name: "status", Scheme: probe.MQTTS, Host: "127.0.0.1", Port: l.Port}, nil
		}
	}
	return probe.Target{}, errs.Invalid("listeners", "status needs an mqtt or mqtts listener (without mutual TLS) reachable on 127.0.0.1")
}

// statusTarget is statusListener as a client URL and its TLS settings.
func statusTarget(sys system.System, s *spec.Spec) (string, *tls.Config, error) {
	t, err := statusListener(s)
	if err != nil {
		return "", nil, err
	}
	if t.Scheme == probe.MQTT {
		return fmt.Sprintf("tcp://127.0.0.1:%d", t.Port), nil, nil
	}
	pem, err := sys.ReadFile(layout.BrokerCACert)
	if err != nil {
		return "", nil, fmt.Errorf("read the broker's CA %s: %w", layout.BrokerCACert, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return fmt.Sprintf("ssl://127.0.0.1:%d", t.Port), &tls.Config{RootCAs: pool, ServerName: s.Hostname, MinVersion: tls.VersionTLS12}, nil
}

// brokerLogLines are the last lines of the broker's log files (its
// `log_dest file` targets), or of its journal when it logs elsewhere.
func brokerLogLines(ctx context.Context, sys system.System) []string {
	var lines []string
	if b, err := conf.ReadBroker(sys, layout.MosquittoConf); err == nil {
		for _, p := range b.LogFiles {
			data, err := sys.ReadFile(p)
			if err != nil {
				continue
			}
			all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			if len(all) > 500 {
				all = all[len(all)-500:]
			}
			lines = append(lines, all...)
		}
	}
	if len(lines) == 0 && sys.Root() == "/" {
		out, err := sys.Run(ctx, system.Cmd{Name: "journalctl", Args: []string{"-u", "mosquitto", "-n", "500", "--no-pager"}, ReadOnly: true})
		if err == nil {
			lines = strings.Split(string(out.Stdout), "\n")
		}
	}
	return lines
}

func printBrokerStatus(w io.Writer, r *status.Report) {
	fmt.Fprintf(w, "broker         mosquitto %s, up %s\n", r.Version, time.Duration(r.UptimeSeconds)*time.Second)
	fmt.Fprintf(w, "clients        %d connected\n", r.ClientsConnected)
	fmt.Fprintf(w, "messages/s     %.1f in, %.1f out (one-minute averages)\n", r.MessagesInPerSec, r.MessagesOutPerS)
	fmt.Fprintf(w, "bytes/s        %.0f in, %.0f out\n", r.BytesInPerSec, r.BytesOutPerSec)
	fmt.Fprintf(w, "retained       %d messages\n", r.Retained)
	fmt.Fprintf(w, "subscriptions  %d\n", r.Subscriptions)
	if len(r.Bridges) == 0 {
		fmt.Fprintln(w, "bridges        none")
	}
	for _, b := range r.Bridges {
		state := "not connected"
		if b.Connected {
			state = "connected"
		}
		fmt.Fprintf(w, "bridge         %s: %s\n", b.Name, state)
	}
	for _, c := range []struct {
		label string
		cert  *status.Cert
	}{{"server cert", r.ServerCert}, {"CA cert", r.CACert}} {
		switch {
		case c.cert == nil || !c.cert.Present:
			fmt.Fprintf(w, "%-14s none\n", c.label)
		default:
			fmt.Fprintf(w, "%-14s %d days left\n", c.label, c.cert.DaysLeft)
		}
	}
	if len(r.Warnings) == 0 {
		fmt.Fprintln(w, "log            no recent warnings")
	}
	for _, l := range r.Warnings {
		fmt.Fprintf(w, "log            %s\n", l)
	}
}
