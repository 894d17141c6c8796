package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// --- cert revoke ---

type certRevokeOptions struct {
	*App
	Paths *certPathFlags
	Names []string
	// Serials and CertFiles name certificates outside the clients folder.
	Serials   []string
	CertFiles []string
	// Conf is the mosqprov configuration whose mutual-TLS listeners get
	// the crlfile line.
	Conf string
}

func newCertRevokeCmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certRevokeOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "revoke [NAME...] [--cert FILE]... [--serial HEX]...",
		Short: "Revoke client certificates: the broker refuses them from now on",
		Long: `Put the current certificate of each client NAME (under --clients-dir) on the
CA's certificate revocation list (CRL), copy the list to the broker
(/etc/mosquitto/certs/crl.pem), name it as crlfile on the mutual-TLS listeners
of the mosqprov configuration, and reload (or, when the crlfile line is new,
restart) the broker: a lost or sold device can no longer connect with its
certificate, every other client still does.

A CRL has a next-update date; once it passes, Mosquitto refuses every client
certificate (mosquitto issue 1826). mosqprov signs it for 365 days and
re-signs it when fewer than 90 are left, on every cert renew and apply: keep
the daily cert renew cron job. cert status and doctor show the date.

A certificate the CA issued that is not in --clients-dir (one written with
cert client --out, such as a bridge's client certificate, or a device's whose
local copy is lost) is revoked with --cert FILE (the certificate, a file on
this machine; it must be signed by this CA and be a client certificate) or
--serial HEX (its serial number, as openssl x509 -noout -serial or cert status
prints it; colons and 0x are fine). The CA's own certificate and the broker's
server certificate are refused.

WebSockets listeners (wss) don't check the CRL (mosquitto issue 3042): a
revoked certificate still connects there. Revoking is for good: to let the
device back in, issue it a new certificate (cert client NAME), which gets a
new serial number.`,
		Example: `  sudo mosqprov cert revoke lost-phone
  sudo mosqprov cert revoke sold-esp32 old-laptop
  sudo mosqprov cert revoke --cert ./bridge/garage-bridge.crt
  sudo mosqprov cert revoke --serial 4a:3f:9c:01:77:e2:5b:8d:10:aa:42:6e:93:c5:0f:21`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			if len(args) == 0 && len(o.Serials) == 0 && len(o.CertFiles) == 0 {
				return flagErrorf("name a client (NAME), a certificate (--cert FILE) or a serial number (--serial HEX) to revoke")
			}
			return runCertRevoke(cmd.Context(), o)
		},
	}
	cmd.Flags().StringArrayVar(&o.CertFiles, "cert", nil, "revoke the certificate in `FILE` (PEM, a file on this machine; repeatable)")
	cmd.Flags().StringArrayVar(&o.Serials, "serial", nil, "revoke the certificate with serial number `HEX` (repeatable)")
	cmd.Flags().StringVar(&o.Conf, "conf", layout.DropIn, "the mosqprov configuration `FILE` whose mutual-TLS listeners get the crlfile line")
	markTargetPath(cmd.Flags(), "conf")
	return cmd
}

func runCertRevoke(ctx context.Context, o *certRevokeOptions) error {
	if err := conf.ValidatePath("--conf", o.Conf, false); err != nil {
		return err
	}
	p := o.Paths.paths()
	var targets []certs.Target
	for _, f := range o.CertFiles {
		data, err := system.ReadInputFile("--cert", f, system.MaxPEM)
		if errs.IsInput(err) {
			return err
		}
		if err != nil {
			return errs.Invalid("--cert", "can't read %s: %v", f, errs.PathCause(err))
		}
		cert, err := pki.ParseCertificate(data)
		if err != nil {
			return errs.Invalid("--cert", "%s: %v", f, err)
		}
		targets = append(targets, certs.Target{Field: "--cert", Cert: cert})
	}
	for _, h := range o.Serials {
		n, err := pki.ParseSerial("--serial", h)
		if err != nil {
			return err
		}
		targets = append(targets, certs.Target{Field: "--serial", Serial: n})
	}
	res, err := certs.EnsureCRL(o.Sys, certs.CRLOptions{Paths: p, Revoke: o.Names, Field: "NAME", Targets: targets})
	if err != nil {
		return err
	}
	o.Take(res.Result)
	if err := o.syncCRLFile(p); err != nil {
		return err
	}
	return o.Settle(ctx)
}

// syncCRLFile names the broker's CRL as crlfile in the mosqprov
// configuration, when it has mutual-TLS listeners and doesn't yet. Other
// configurations are left alone, with a word.
func (o *certRevokeOptions) syncCRLFile(p certs.Paths) error {
	data, err := o.Sys.ReadFile(o.Conf)
	if errors.Is(err, fs.ErrNotExist) {
		o.Warn("%s does not exist: name %s as crlfile on your mutual-TLS listeners, or run `mosqprov conf write`", o.Conf, p.BrokerCRL)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", o.Conf, err)
	}
	if !conf.IsManaged(data) {
		o.Warn("%s is not managed by mosqprov: make sure each mutual-TLS listener has crlfile %s", o.Conf, p.BrokerCRL)
		return nil
	}
	cfg, err := conf.Parse(data)
	if err != nil {
		o.Warn("%s was edited by hand (%v): run `mosqprov conf write` so its mutual-TLS listeners get crlfile %s", o.Conf, err, p.BrokerCRL)
		return nil
	}
	mtls := false
	for _, l := range cfg.Listeners {
		if l.MutualTLS {
			mtls = true
			if l.WebSockets() {
				o.Warn("%s", conf.WebSocketsCRLWarning(l))
			}
		}
	}
	if !mtls {
		o.Warn("%s has no mutual-TLS listener: the revocation list matters only where clients log in with certificates", o.Conf)
		return nil
	}
	if cfg.CRLFile == p.BrokerCRL {
		return nil
	}
	cfg.CRLFile = p.BrokerCRL
	res, err := conf.Write(o.Sys, o.Conf, cfg)
	if err != nil {
		return err
	}
	for i := range res.Changes {
		res.Changes[i].Detail = "crlfile " + p.BrokerCRL + " added to the mutual-TLS listeners"
	}
	o.Take(res)
	return nil
}

// printCRLStatus is cert status's entry for the revocation list.
func printCRLStatus(w io.Writer, e certs.Entry, verdict string) {
	fmt.Fprintf(w, "revocation list: %s\n", verdict)
	fmt.Fprintf(w, "  file:      %s (the CA's copy %s)\n", e.Path, e.KeyPath)
	if c := e.CRL; c != nil {
		fmt.Fprintf(w, "  next update: %s (%d days left; re-signed by cert renew and apply %d days before)\n", c.NextUpdate.Format(time.DateOnly), c.DaysLeft, pki.CRLRenewDays)
		for _, r := range c.Revoked {
			name := r.Name
			if name == "" {
				name = "serial " + r.Serial
			}
			fmt.Fprintf(w, "  revoked:   %s on %s\n", name, r.At.Format(time.DateOnly))
		}
	}
	fmt.Fprintf(w, "  signed by the CA: %s, owner/mode ok: %s\n", yesNo(e.ChainOK), yesNo(e.FilesOK))
	for _, p := range e.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}
