package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/doctor"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/probe"
	"github.com/mosqprov/mosqprov/pkg/spec"
)

type verifyOptions struct {
	*App
	File           string
	Host           string
	CA             string
	Listeners      []string
	Names          []string
	User           string
	PasswordStdin  bool
	Topic          string
	Timeout        time.Duration
	AllowAnonymous bool
	Cert           string
	Key            string
	// spec is broker.yaml when the listeners came from it.
	spec *spec.Spec
}

func newVerifyCmd(a *App) *cobra.Command {
	o := &verifyOptions{App: a}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every listener the way a client sees it",
		Long: `verify connects to every listener of broker.yaml with a real MQTT client
(TCP, TLS, WebSockets, WebSockets over TLS) and reports, one line per
listener: the connection, the TLS handshake, the certificate chain against
the CA, each host name and IP of the spec against the certificate, the days
left, and that anonymous clients are refused. With --user it also publishes
and receives a message on a test topic.

From another machine (a laptop), name the broker and the CA clients trust:
  mosqprov verify --host pi.local --ca ca.crt --listener mqtts --listener wss
Exit code 1 when any listener fails.`,
		Example: `  sudo mosqprov verify
  MOSQPROV_PASSWORD=... mosqprov verify --user alice
  mosqprov verify --host raspberrypi.local --ca ./ca.crt --listener mqtts:8883 --user alice --password-stdin < pw.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	bindSpecFile(cmd, &o.File, "check against")
	f.StringVar(&o.Host, "host", "", "connect to `HOST` (a name or IP) instead of this machine; also the name the certificate must hold")
	f.StringVar(&o.CA, "ca", "", "CA certificate clients trust (`FILE`; default the CA mosqprov made, else the system's CAs)")
	f.StringArrayVar(&o.Listeners, "listener", nil, "check `TYPE[:PORT]` (mqtt, mqtts, ws, wss) instead of the spec's listeners; repeatable")
	f.StringArrayVar(&o.Names, "name", nil, "a further host `NAME` or IP the certificate must hold; repeatable")
	f.StringVar(&o.User, "user", "", "publish and subscribe as `NAME` (password from --password-stdin, "+PasswordEnv+" or a prompt)")
	f.BoolVar(&o.PasswordStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&o.Topic, "topic", "", "round-trip topic prefix; a random level is added (default: one broker.yaml's ACL lets the user read and write, else mosqprov/verify)")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Second, "how long each step may take")
	f.BoolVar(&o.AllowAnonymous, "allow-anonymous", false, "with --listener: anonymous access is meant to be on")
	f.StringVar(&o.Cert, "cert", "", "client certificate `FILE` for mutual TLS listeners")
	f.StringVar(&o.Key, "key", "", "client key `FILE` for --cert")
	return cmd
}

// verifyResult is the json result of verify.
type verifyResult struct {
	OK        bool                 `json:"ok"`
	Listeners []probe.Result       `json:"listeners"`
	Bridges   []probe.BridgeResult `json:"bridges,omitempty"`
}

func runVerify(ctx context.Context, o *verifyOptions) error {
	if o.Timeout <= 0 {
		return errs.Invalid("--timeout", "%s is not a positive duration", o.Timeout)
	}
	if (o.Cert == "") != (o.Key == "") {
		return errs.Invalid("--cert", "--cert and --key go together")
	}
	if o.PasswordStdin && o.User == "" {
		return errs.Invalid("--password-stdin", "needs --user")
	}
	if strings.ContainsAny(o.Topic, "#+\x00") {
		return errs.Invalid("--topic", "%q must be a topic name without wildcards", o.Topic)
	}
	want, err := o.expectations()
	if err != nil {
		return err
	}
	opts := probe.Options{
		Names: want.Names, ServerName: want.ServerName, AllowAnonymous: want.AllowAnonymous,
		Topic: o.Topic, Timeout: o.Timeout, Now: o.Sys.Now,
	}
	if opts.Topic == "" {
		opts.Topic = want.Topic
	}
	if opts.CA, err = o.caPEM(); err != nil {
		return err
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return errs.Invalid("--cert", "%v", err)
		}
		opts.ClientCert = &pair
	}
	if o.User != "" {
		opts.User = o.User
		if opts.Password, err = o.ReadSecret("password for "+o.User, o.PasswordStdin, PasswordEnv, false); err != nil {
			return err
		}
	}

	// Listeners are independent: check them at once, so a dead port's
	// timeout isn't paid once per listener.
	results := make([]probe.Result, len(want.Targets))
	var wg sync.WaitGroup
	for i, t := range want.Targets {
		if want.LoopbackOnly[i] {
			results[i] = probe.Skipped(t, "bound to loopback on the broker: only its own programs reach it")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo := opts
			lo.NeedClientCert = want.MutualTLS[i]
			results[i] = probe.Probe(ctx, t, lo)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	res := verifyResult{OK: true, Listeners: results}
	for _, r := range results {
		res.OK = res.OK && r.OK
	}
	res.Bridges = o.verifyBridges(ctx, want, opts)
	for _, r := range res.Bridges {
		res.OK = res.OK && r.OK
	}
	if !res.OK && o.Host == "" {
		// A broker that is down on this machine may be refusing a
		// database a power cut zero-filled (mosquitto issue 2639).
		if warning := doctor.DatabaseWarning(o.Sys, layout.MosquittoConf); warning != "" {
			o.Warn("%s", warning)
		}
	}
	o.Result(res, func(w io.Writer) {
		printVerify(w, results, o.Globals.Verbose)
		printVerifyBridges(w, res.Bridges, o.Globals.Verbose)
	})
	if !res.OK {
		return errs.ErrCheckFailed
	}
	return nil
}

// expectations are the listeners to check: from --listener, else from the spec.
func (o *verifyOptions) expectations() (probe.Expectations, error) {
	var p probe.Expectations
	if len(o.Listeners) > 0 {
		host := o.Host
		if host == "" {
			host = conf.LoopbackBind
		}
		p = probe.Expectations{ServerName: host, AllowAnonymous: o.AllowAnonymous, MutualTLS: map[int]bool{}}
		if o.Host != "" {
			p.Names = []string{o.Host}
		}
		for _, v := range o.Listeners {
			scheme, port, err := probe.ParseListener(v)
			if err != nil {
				return p, errs.Invalid("--listener", "%v", err)
			}
			p.Targets = append(p.Targets, probe.Target{Name: fmt.Sprintf("%s:%d", scheme, port), Scheme: scheme, Host: host, Port: port})
		}
	} else {
		path := o.File
		if path == "" {
			path = o.Sys.HostPath(layout.Spec)
		}
		s, err := spec.Load(o.Sys, path)
		if err != nil {
			return p, err
		}
		if o.AllowAnonymous {
			return p, errs.Invalid("--allow-anonymous", "only with --listener; the spec says allow_anonymous")
		}
		o.spec = s
		p = probe.FromSpec(s, o.Host)
		if o.User != "" {
			// After setup limited each user to its own topics, the
			// default test topic would be denied.
			p.Topic = probe.ACLTopic(s, o.User)
		}
		if o.Host != "" && !slices.Contains(p.Names, o.Host) {
			p.Names = append(p.Names, o.Host)
		}
	}
	for _, n := range o.Names {
		if n == "" || strings.ContainsAny(n, " \t\r\n") {
			return p, errs.Invalid("--name", "%q is not a host name or IP", n)
		}
		if !slices.Contains(p.Names, n) {
			p.Names = append(p.Names, n)
		}
	}
	if len(p.Targets) == 0 {
		return p, errs.Invalid("listeners", "nothing to check: the spec has no listeners")
	}
	return p, nil
}

// caPEM is what clients trust: --ca, else the CA mosqprov made on this
// machine, else nothing (the system's roots, for a public certificate).
func (o *verifyOptions) caPEM() ([]byte, error) {
	if o.CA != "" {
		data, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, errs.Invalid("--ca", "%v", err)
		}
		return data, nil
	}
	for _, p := range []string{layout.CACert, layout.BrokerCACert} {
		if data, err := o.Sys.ReadFile(p); err == nil {
			o.Debugf("trusting %s", p)
			return data, nil
		}
	}
	o.Debugf("no CA file found; trusting the system's CAs")
	return nil, nil
}

func printVerify(w io.Writer, results []probe.Result, verbose bool) {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Listener))
	}
	failed := 0
	for _, r := range results {
		mark := "ok  "
		text := verifySummary(r)
		if !r.OK {
			mark = "FAIL"
			text = r.Reason
			failed++
		}
		fmt.Fprintf(w, "%s %-*s %s  %s\n", mark, width, r.Listener, r.URL, text)
		for _, c := range r.Checks {
			if verbose || c.Status == probe.Warn || (!r.OK && c.Status == probe.Fail && r.Reason != c.Name+": "+c.Detail) {
				fmt.Fprintf(w, "     %-4s %s: %s\n", c.Status, c.Name, c.Detail)
			}
		}
	}
	noun := "listeners"
	if len(results) == 1 {
		noun = "listener"
	}
	if failed == 0 {
		fmt.Fprintf(w, "%d %s checked, all passed\n", len(results), noun)
	} else {
		fmt.Fprintf(w, "%d %s checked, %d failed\n", len(results), noun, failed)
	}
}

// verifySummary is what a passing listener proved, in a few words.
func verifySummary(r probe.Result) string {
	var parts []string
	names := 0
	for _, c := range r.Checks {
		switch {
		case c.Name == probe.CheckConnect && c.Status == probe.Skip:
			parts = append(parts, "not checked: "+c.Detail)
		case c.Name == probe.CheckTLS:
			parts = append(parts, strings.SplitN(c.Detail, ",", 2)[0])
		case c.Name == probe.CheckChain:
			parts = append(parts, "chain ok")
		case strings.HasPrefix(c.Name, probe.CheckName+":"):
			names++
		case c.Name == probe.CheckExpiry && r.DaysLeft != nil:
			if names > 0 {
				parts = append(parts, fmt.Sprintf("%d names ok", names))
			}
			parts = append(parts, fmt.Sprintf("%d days left", *r.DaysLeft))
		case c.Name == probe.CheckAnonymous:
			switch {
			case c.Status == probe.Skip:
				parts = append(parts, "MQTT not checked (needs --cert)")
			case strings.Contains(c.Detail, "accepted"):
				parts = append(parts, "anonymous allowed")
			default:
				parts = append(parts, "anonymous refused")
			}
		case c.Name == probe.CheckAuth && c.Status == probe.Skip:
			parts = append(parts, "login not tried")
		case c.Name == probe.CheckRoundtrip:
			parts = append(parts, "round trip ok")
		}
	}
	return strings.Join(parts, ", ")
}
