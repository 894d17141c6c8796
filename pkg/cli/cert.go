package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// P12PasswordEnv is where `cert client --p12` takes the bundle's password
// from when it isn't on stdin.
const P12PasswordEnv = "MOSQPROV_P12_PASSWORD"

func newCertCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Manage the local CA, the broker's server certificate and client certificates",
		Long: `Certificates made with crypto/x509, no openssl: a private CA whose key stays
root-only in /etc/mosqprov/ca, a server certificate with every name and IP as a
subjectAltName (what modern TLS clients check), client certificates for mutual
TLS, renewal, import of certificates from elsewhere (Let's Encrypt) and export
of the CA certificate for devices.`,
	}
	pf := &certPathFlags{}
	d := certs.DefaultPaths()
	f := cmd.PersistentFlags()
	f.StringVar(&pf.CADir, "ca-dir", d.CADir, "the CA's folder `DIR` (ca.key, ca.crt)")
	f.StringVar(&pf.BrokerDir, "certs-dir", d.BrokerDir, "the broker's certificate folder `DIR` (ca.crt, server.crt, server.key)")
	f.StringVar(&pf.ClientDir, "clients-dir", d.ClientDir, "the `DIR` client certificates go to, one folder per client")
	markTargetPath(f, "ca-dir", "certs-dir", "clients-dir")
	cmd.AddCommand(newCertCACmd(a, pf), newCertServerCmd(a, pf), newCertClientCmd(a, pf), newCertStatusCmd(a, pf),
		newCertRenewCmd(a, pf), newCertExportCmd(a, pf), newCertImportCmd(a, pf), newCertRevokeCmd(a, pf))
	return cmd
}

// certPathFlags move the managed files; like every target path they are
// resolved under --root.
type certPathFlags struct {
	CADir, BrokerDir, ClientDir string
}

func (f *certPathFlags) paths() certs.Paths {
	if f == nil {
		return certs.DefaultPaths()
	}
	return certs.Paths{
		CADir: f.CADir, CAKey: path.Join(f.CADir, "ca.key"), CACert: path.Join(f.CADir, "ca.crt"),
		BrokerDir: f.BrokerDir, BrokerCA: path.Join(f.BrokerDir, "ca.crt"),
		ServerCert: path.Join(f.BrokerDir, "server.crt"), ServerKey: path.Join(f.BrokerDir, "server.key"),
		ClientDir: f.ClientDir,
		CACRL:     path.Join(f.CADir, "crl.pem"), BrokerCRL: path.Join(f.BrokerDir, "crl.pem"),
	}
}

func keyTypeFlag(s string) (pki.KeyType, error) {
	if s == "" {
		return "", nil
	}
	return pki.ParseKeyType("--key-type", s)
}

const keyTypeHelp = "key type: rsa-2048, rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384 (default: keep the existing certificate's; rsa-2048 for a new one)"

// --- cert ca ---

type certCAOptions struct {
	*App
	Paths   *certPathFlags
	CAName  string
	KeyType string
	Force   bool
	// CANameSet tells an explicit --ca-name '' (an error) from no flag.
	CANameSet bool
}

func newCertCACmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certCAOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Create the local CA (once; an existing valid CA is kept)",
		Long: `Create the local CA that signs the server and client certificates: its key
stays in /etc/mosqprov/ca/ca.key (root only), its certificate in ca.crt is
what devices trust (see cert export). A valid CA is kept as it is, even when
--ca-name or --key-type differ (a warning says so): replacing it takes
--force, and every device then needs the new ca.crt.`,
		Example: `  sudo mosqprov cert ca
  sudo mosqprov cert ca --ca-name "Home MQTT CA" --key-type ecdsa-p256`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.CANameSet = cmd.Flags().Changed("ca-name")
			return runCertCA(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.CAName, "ca-name", "", "the CA's common name (default \"mosqprov CA <hostname>\")")
	f.StringVar(&o.KeyType, "key-type", "", "the CA's key type: rsa-2048 (default; what old microcontroller TLS stacks verify), rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384")
	f.BoolVar(&o.Force, "force", false, "replace an existing CA (every device must then get the new ca.crt)")
	return cmd
}

func runCertCA(ctx context.Context, o *certCAOptions) error {
	kt, err := keyTypeFlag(o.KeyType)
	if err != nil {
		return err
	}
	name := o.CAName
	if name == "" && !o.CANameSet {
		host, err := o.Sys.Hostname()
		if err != nil {
			return fmt.Errorf("read hostname: %w", err)
		}
		name = pki.DefaultCAName(host)
	}
	done := o.busy(plan.StepCA)
	res, err := certs.EnsureCA(o.Sys, certs.CAOptions{Paths: o.Paths.paths(), CommonName: name, KeyType: kt, Force: o.Force})
	done()
	return o.Converged(ctx, res, err)
}

// --- cert server ---

type certServerOptions struct {
	*App
	Paths       *certPathFlags
	Names       []string
	IPs         []string
	KeyType     string
	Days        int
	RenewBefore int
	// Host gives the default names; nil is the machine behind Sys.
	Host certs.Host
}

func newCertServerCmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certServerOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Issue or renew the broker's server certificate (kept while it is still right)",
		Long: `Issue the broker's server certificate, signed by the local CA, with every name
and IP as a subjectAltName (the first name is also the CN).

Without --name and --ip it covers the host name, <hostname>.local, localhost,
127.0.0.1, ::1 and the host's other addresses. Any --name or --ip replaces
that whole list: give every name and address clients connect with, including
localhost and 127.0.0.1 if clients on this machine use TLS.

The existing certificate is kept when it chains to the CA, matches its key,
covers every requested name and IP (it may carry more), has the requested key
type and more than --renew-before days left; otherwise it is reissued with
exactly the requested names, and the reason printed. The broker is then
reloaded (Mosquitto re-reads certificates on SIGHUP).`,
		Example: `  sudo mosqprov cert server          # this host's names and addresses
  sudo mosqprov cert server --name raspberrypi.local --name localhost --ip 192.168.1.10 --ip 127.0.0.1
  sudo mosqprov cert server --key-type ecdsa-p256 --days 397`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runCertServer(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Names, "name", nil, "a DNS `NAME` (or IP) the certificate covers; repeatable; the first is the CN; replaces the default names")
	f.StringArrayVar(&o.IPs, "ip", nil, "an `IP` address the certificate covers; repeatable; replaces the default names")
	f.StringVar(&o.KeyType, "key-type", "", keyTypeHelp)
	f.IntVar(&o.Days, "days", pki.ServerDays, "validity of a new certificate in days (at most 825, Apple's limit for TLS server certificates)")
	f.IntVar(&o.RenewBefore, "renew-before", certs.DefaultRenewBefore, "reissue when fewer than this many days are left")
	return cmd
}

func runCertServer(ctx context.Context, o *certServerOptions) error {
	kt, err := keyTypeFlag(o.KeyType)
	if err != nil {
		return err
	}
	// Checked here too: the domain package reads 0 as "the default".
	if err := pki.CheckDays("--days", o.Days, pki.ServerDays); err != nil {
		return err
	}
	names, ips := o.Names, o.IPs
	if len(names)+len(ips) == 0 {
		host := o.Host
		if host == nil {
			host = o.Sys
		}
		if names, ips, err = certs.DefaultNames(host); err != nil {
			return err
		}
		o.Debugf("default names: %s", strings.Join(append(append([]string{}, names...), ips...), " "))
	}
	done := o.busy(plan.StepServer)
	res, err := certs.EnsureServer(o.Sys, certs.ServerOptions{
		Paths: o.Paths.paths(), Names: names, IPs: ips, KeyType: kt, Days: o.Days, RenewBefore: o.RenewBefore,
	})
	done()
	return o.Converged(ctx, res, err)
}

// --- cert client ---

type certClientOptions struct {
	*App
	Paths         *certPathFlags
	Name          string
	OutDir        string
	KeyType       string
	Days          int
	RenewBefore   int
	P12           bool
	PasswordStdin bool
}

func newCertClientCmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certClientOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "client NAME",
		Short: "Issue a client certificate for mutual TLS (CN=NAME)",
		Long: `Issue a client certificate with CN=NAME, so a listener with
use_identity_as_username maps it to the MQTT user NAME. The key, certificate
and the CA certificate go to /etc/mosqprov/clients/NAME/ (root only) or --out
DIR. --p12 also writes NAME.p12 for phones; its password comes from stdin
(--password-stdin), $` + P12PasswordEnv + ` or a prompt, never from the command line.`,
		Example: `  sudo mosqprov cert client blinds-esp32
  sudo mosqprov cert client phone --p12 --out ./phone      # asks for the bundle's password twice
  pass show mqtt/phone | sudo mosqprov cert client phone --p12 --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runCertClient(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.OutDir, "out", "", "write the files to `DIR` instead of /etc/mosqprov/clients/NAME")
	f.StringVar(&o.KeyType, "key-type", "", keyTypeHelp)
	f.IntVar(&o.Days, "days", pki.ClientDays, "validity of a new certificate in days")
	f.IntVar(&o.RenewBefore, "renew-before", certs.DefaultRenewBefore, "reissue when fewer than this many days are left")
	f.BoolVar(&o.P12, "p12", false, "also write a PKCS#12 bundle (NAME.p12) for phones")
	f.BoolVar(&o.PasswordStdin, "password-stdin", false, "read the PKCS#12 password from the first line of stdin")
	return cmd
}

func runCertClient(ctx context.Context, o *certClientOptions) error {
	kt, err := keyTypeFlag(o.KeyType)
	if err != nil {
		return err
	}
	if err := pki.ValidateClientName("NAME", o.Name); err != nil {
		return err
	}
	if err := pki.CheckDays("--days", o.Days, pki.MaxClientDays); err != nil {
		return err
	}
	if o.PasswordStdin && !o.P12 {
		return errs.Invalid("--password-stdin", "only used with --p12")
	}
	var password string
	if o.P12 {
		if password, err = o.ReadSecret("PKCS#12 password", o.PasswordStdin, P12PasswordEnv, true); err != nil {
			return err
		}
		if password == "" {
			return errs.Invalid("--p12", "the password is empty")
		}
	}
	res, err := certs.EnsureClient(o.Sys, certs.ClientOptions{
		// --out is the caller's own folder: a path on this machine, not under --root.
		Paths: o.Paths.paths(), Name: o.Name, OutDir: o.OutDir, Out: system.OnHost(o.Sys), KeyType: kt, Days: o.Days,
		RenewBefore: o.RenewBefore, P12: o.P12, Password: password,
	})
	return o.Converged(ctx, res, err)
}

// --- cert status ---

type certStatusOptions struct {
	*App
	Paths *certPathFlags
	Warn  int
}

func newCertStatusCmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certStatusOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the CA, server and client certificates; exit 1 when one needs attention",
		Long: `Show subject, names, key type, expiry, whether the chain verifies, whether the
key matches and whether owners and modes are right, for the CA, the server
certificate and every client certificate. Exits 1 when something expires within
--warn days or has another problem, so a cron job can mail you.`,
		Example: `  sudo mosqprov cert status
  sudo mosqprov cert status --warn 60 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runCertStatus(cmd.Context(), o) },
	}
	cmd.Flags().IntVar(&o.Warn, "warn", certs.DefaultRenewBefore, "report certificates that expire within this many days")
	return cmd
}

func runCertStatus(_ context.Context, o *certStatusOptions) error {
	if o.Warn < 0 {
		return errs.Invalid("--warn", "%d is negative", o.Warn)
	}
	entries, err := certs.Status(o.Sys, o.Paths.paths(), o.Warn)
	if err != nil {
		return err
	}
	o.Result(entries, func(w io.Writer) { printStatus(w, entries) })
	if certs.Failing(entries) {
		return errs.ErrCheckFailed
	}
	return nil
}

func printStatus(w io.Writer, entries []certs.Entry) {
	for _, e := range entries {
		if !e.Present {
			fmt.Fprintf(w, "%s: none (%s)\n", e.Label(), e.Path)
			continue
		}
		verdict := "ok"
		if len(e.Problems) > 0 {
			verdict = "PROBLEM"
		} else if e.Revoked {
			verdict = "revoked"
		}
		if e.CRL != nil || e.Kind == "crl" {
			printCRLStatus(w, e, verdict)
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", e.Label(), verdict)
		fmt.Fprintf(w, "  file:      %s (key %s)\n", e.Path, e.KeyPath)
		if e.Subject != "" {
			fmt.Fprintf(w, "  subject:   %s\n", e.Subject)
		}
		if len(e.SANs) > 0 {
			fmt.Fprintf(w, "  names:     %s\n", strings.Join(e.SANs, ", "))
		}
		if e.KeyType != "" {
			fmt.Fprintf(w, "  key:       %s\n", e.KeyType)
			fmt.Fprintf(w, "  expires:   %s (%d days left)\n", e.NotAfter.Format(time.DateOnly), e.DaysLeft)
		}
		fmt.Fprintf(w, "  chain ok:  %s, key matches: %s, owner/mode ok: %s\n", yesNo(e.ChainOK), yesNo(e.KeyMatches), yesNo(e.FilesOK))
		for _, p := range e.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// --- cert renew ---

type certRenewOptions struct {
	*App
	Paths       *certPathFlags
	RenewBefore int
}

func newCertRenewCmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certRenewOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "Reissue every certificate from the local CA that is due, then reload the broker",
		Long: `Reissue the server certificate and every client certificate under
--clients-dir issued by the local CA that has fewer than --renew-before days
left, with the same names and key type, and reload the broker so it serves the
new one (Mosquitto 2.0.11 re-reads certificates on SIGHUP). Certificates
written with "cert client --out" are not tracked: run that command again.
The CA is never replaced, and an imported server certificate is left to
whoever issued it. Safe to run daily from cron.`,
		Example: `  sudo mosqprov cert renew
  # /etc/cron.d/mosqprov: every day at 04:17
  17 4 * * * root /usr/local/bin/mosqprov cert renew >/dev/null`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runCertRenew(cmd.Context(), o) },
	}
	cmd.Flags().IntVar(&o.RenewBefore, "renew-before", certs.DefaultRenewBefore, "reissue when fewer than this many days are left")
	return cmd
}

func runCertRenew(ctx context.Context, o *certRenewOptions) error {
	done := o.busy(plan.StepServer)
	res, err := certs.Renew(o.Sys, certs.RenewOptions{Paths: o.Paths.paths(), RenewBefore: o.RenewBefore})
	done()
	return o.Converged(ctx, res, err)
}

// --- cert export ---

type certExportOptions struct {
	*App
	Paths  *certPathFlags
	Format string
	Out    string
}

func newCertExportCmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certExportOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print the CA certificate for devices (PEM, DER or a C header) with its fingerprint",
		Long: `Print the CA certificate (never its key) for clients to trust: PEM for
mosquitto_pub --cafile and most libraries, DER for Android's certificate
installer, or a C header with the PEM as a string literal for ESP32/Arduino
sketches (WiFiClientSecure::setCACert). The SHA-256 fingerprint goes to stderr
so you can compare it with what a phone shows.`,
		Example: `  mosqprov cert export > ca.crt
  mosqprov cert export --format der --out /tmp/mqtt-ca.der
  mosqprov cert export --format c-header > mqtt_ca.h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runCertExport(cmd.Context(), o) },
	}
	cmd.Flags().StringVar(&o.Format, "format", certs.FormatPEM, "pem, der or c-header")
	cmd.Flags().StringVar(&o.Out, "out", "", "write to `FILE` instead of stdout")
	return cmd
}

func runCertExport(_ context.Context, o *certExportOptions) error {
	e, err := certs.Export(o.Sys, o.Paths.paths(), o.Format)
	if err != nil {
		return err
	}
	if o.Out != "" {
		// --out is the caller's own file, as -f is: a path on this machine,
		// never under --root.
		out := system.OnHost(o.Sys)
		// A missing folder is a mistake in the flag (exit 3), not a failed
		// write; the file itself is created.
		if dir := path.Dir(o.Out); dir != "." {
			if _, err := out.Stat(dir); err != nil {
				return errs.Invalid("--out", "can't write %s: the folder %s does not exist", o.Out, dir)
			}
		}
		act, err := out.WriteFile(o.Out, e.Data, system.Attr{Mode: 0o644})
		if err != nil {
			return err
		}
		o.Add(system.NewChange("exported CA certificate", o.Out, act, ""))
	}
	result := map[string]any{"format": e.Format, "sha256_fingerprint": e.Fingerprint, "subject": e.Subject, "not_after": e.NotAfter}
	if o.Out == "" {
		if e.Format == certs.FormatDER {
			result["data_base64"] = base64.StdEncoding.EncodeToString(e.Data)
		} else {
			result["data"] = string(e.Data)
		}
	}
	o.Result(result, func(w io.Writer) {
		if o.Out == "" {
			w.Write(e.Data)
		}
	})
	o.Infof("%s, SHA-256 fingerprint %s", e.Subject, e.Fingerprint)
	return nil
}

// --- cert import ---

type certImportOptions struct {
	*App
	Paths *certPathFlags
	Cert  string
	Key   string
	Chain string
}

func newCertImportCmd(a *App, pf *certPathFlags) *cobra.Command {
	o := &certImportOptions{App: a, Paths: pf}
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Install a server certificate made elsewhere (Let's Encrypt) for the broker",
		Long: `Install a server certificate from elsewhere: checks that the key matches the
certificate and that the chain is complete up to a trusted root, then copies
leaf and intermediates to /etc/mosquitto/certs/server.crt and the key to
server.key with the broker's owner and mode, and reloads the broker. The files
given are read as they are named (not under --root). Importing the same files
again changes nothing, so it is safe in a certbot deploy hook.`,
		Example: `  sudo mosqprov cert import --cert /etc/letsencrypt/live/mqtt.example.org/fullchain.pem \
    --key /etc/letsencrypt/live/mqtt.example.org/privkey.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runCertImport(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Cert, "cert", "", "the certificate `FILE` (PEM; may be followed by its intermediates, like fullchain.pem)")
	f.StringVar(&o.Key, "key", "", "the private key `FILE` (PEM)")
	f.StringVar(&o.Chain, "chain", "", "intermediate certificates `FILE` (PEM), when --cert holds only the leaf")
	cmd.MarkFlagRequired("cert")
	cmd.MarkFlagRequired("key")
	return cmd
}

func runCertImport(ctx context.Context, o *certImportOptions) error {
	read := func(field, path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		data, err := system.ReadInputFile(field, path, system.MaxPEM)
		if errs.IsInput(err) {
			return nil, err
		}
		if err != nil {
			return nil, errs.Invalid(field, "can't read %s: %v", path, errs.PathCause(err))
		}
		return data, nil
	}
	certPEM, err := read("--cert", o.Cert)
	if err != nil {
		return err
	}
	keyPEM, err := read("--key", o.Key)
	if err != nil {
		return err
	}
	chainPEM, err := read("--chain", o.Chain)
	if err != nil {
		return err
	}
	res, err := certs.Import(o.Sys, certs.ImportOptions{Paths: o.Paths.paths(), CertPEM: certPEM, KeyPEM: keyPEM, ChainPEM: chainPEM})
	return o.Converged(ctx, res, err)
}
