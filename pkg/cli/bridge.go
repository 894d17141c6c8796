package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// BridgePasswordEnv is the environment variable a bridge's remote password
// may come from.
const BridgePasswordEnv = "MOSQPROV_BRIDGE_PASSWORD"

type bridgeOptions struct {
	*App
	name          string
	addresses     []string
	topics        []string
	caFile        string
	systemCA      bool
	certFile      string
	keyFile       string
	tlsVersion    string
	plainTCP      bool
	username      string
	passwordStdin bool
	protocol      string
	clientID      string
	cleanSession  bool
	keepAlive     int
	notifications bool
	tryPrivate    bool
	outRetain     bool
	startType     string
	noRestart     bool
	// set records which optional booleans were given.
	set map[string]bool
}

func newBridgeCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Manage bridges to other brokers (/etc/mosquitto/conf.d/mosqprov-bridges.conf)",
		Long: `Manage the broker's bridges: connections to other brokers (a cloud broker,
another Pi) that forward topics out, in or both ways. They live in
/etc/mosquitto/conf.d/mosqprov-bridges.conf, root's and readable by the
broker's group only, because it holds the remote passwords; TLS files go to
/etc/mosquitto/bridges. The broker reads bridges only when it starts, so a
change restarts a running broker.

bridges: in broker.yaml does the same for apply; a bridge added here and not
in broker.yaml is kept by apply (with a warning).`,
	}
	cmd.AddCommand(newBridgeAddCmd(a), newBridgeRmCmd(a), newBridgeListCmd(a))
	return cmd
}

func newBridgeAddCmd(a *App) *cobra.Command {
	o := &bridgeOptions{App: a, set: map[string]bool{}}
	cmd := &cobra.Command{
		Use:   "add NAME --address HOST:PORT --topic 'PATTERN DIRECTION [QOS [LOCAL REMOTE]]'...",
		Short: "Add a bridge, or replace the one of that name (idempotent)",
		Long: `Add a bridge to another broker, or replace the bridge of that name with exactly
what the flags say. Each --topic is "PATTERN DIRECTION [QOS [LOCAL_PREFIX
REMOTE_PREFIX]]", as in mosquitto.conf: DIRECTION is out (to the remote), in
(from it) or both; write "" for an empty prefix.

TLS: --ca-file (the remote's CA certificate; for a mosqprov remote its
/etc/mosquitto/certs/ca.crt) or --system-ca (the system's store, for cloud
brokers), and optionally --cert/--key (AWS IoT, or what ` + "`mosqprov cert client NAME`" + `
made on a mosqprov remote with mutual TLS). Without TLS the bridge may only
reach this machine, unless --insecure-plain-tcp.

The remote password (with --username) comes from --password-stdin, $` + BridgePasswordEnv + `
or a hidden prompt; never from the command line.`,
		Example: `  sudo mosqprov bridge add hub --address hub.home.arpa:8883 --ca-file hub-ca.crt \
    --topic 'sensors/# out 1 "" pi1/' --topic 'cmd/# in 1 "" pi1/' --username pi1
  pass show mqtt/cloud | sudo mosqprov bridge add cloud --address mqtt.example.com:8883 --system-ca \
    --topic 'home/# out 1' --username pi1 --password-stdin --protocol 5
  sudo mosqprov bridge add aws --address abc123-ats.iot.eu-west-1.amazonaws.com:8883 --ca-file AmazonRootCA1.pem \
    --cert device.pem.crt --key private.pem.key --client-id pi1 --try-private=false --topic 'pi1/# out 1'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			for _, f := range []string{"cleansession", "notifications", "try-private", "outgoing-retain"} {
				o.set[f] = cmd.Flags().Changed(f)
			}
			return runBridgeAdd(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.addresses, "address", nil, "the remote broker's `HOST:PORT` ([v6]:port); repeat for failover, main one first")
	f.StringArrayVar(&o.topics, "topic", nil, "a topic rule, `'PATTERN DIRECTION [QOS [LOCAL REMOTE]]'`; repeatable")
	f.StringVar(&o.caFile, "ca-file", "", "PEM `FILE` with the CA certificates that verify the remote broker")
	f.BoolVar(&o.systemCA, "system-ca", false, "verify the remote with the system's CA store (/etc/ssl/certs)")
	f.StringVar(&o.certFile, "cert", "", "the bridge's client certificate `FILE` (PEM)")
	f.StringVar(&o.keyFile, "key", "", "the client certificate's private key `FILE` (PEM, unencrypted)")
	f.StringVar(&o.tlsVersion, "tls-version", "", "TLS version to the remote: tlsv1.2 or tlsv1.3 (default: the broker's, tlsv1.2)")
	f.BoolVar(&o.plainTCP, "insecure-plain-tcp", false, "allow plain TCP to another machine (password and messages in clear)")
	f.StringVar(&o.username, "username", "", "the `USER` on the remote broker (asks for its password)")
	f.BoolVar(&o.passwordStdin, "password-stdin", false, "read the remote password from the first line of stdin")
	f.StringVar(&o.protocol, "protocol", "", "MQTT version to the remote: 3.1.1 (default) or 5")
	f.StringVar(&o.clientID, "client-id", "", "the client id on the remote (default NAME.HOSTNAME.XXXXXXXX, from this host's name and machine id)")
	f.BoolVar(&o.cleanSession, "cleansession", false, "drop the remote session when the bridge disconnects")
	f.IntVar(&o.keepAlive, "keepalive", 0, "keepalive in seconds, 5-65535 (default: the broker's, 60)")
	f.BoolVar(&o.notifications, "notifications", true, "publish the bridge's state on $SYS/broker/connection/CLIENT_ID/state")
	f.BoolVar(&o.tryPrivate, "try-private", true, "tell the remote it is a bridge (false for AWS IoT)")
	f.BoolVar(&o.outRetain, "outgoing-retain", true, "keep the retain flag on messages sent out")
	f.StringVar(&o.startType, "start-type", "", "automatic (default), lazy or once")
	f.BoolVar(&o.noRestart, "no-restart", false, "don't restart a running broker after a change")
	return cmd
}

func newBridgeRmCmd(a *App) *cobra.Command {
	o := &bridgeOptions{App: a}
	cmd := &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove a bridge and its TLS files",
		Example: `  sudo mosqprov bridge rm cloud`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			return runBridgeRm(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.noRestart, "no-restart", false, "don't restart a running broker after a change")
	return cmd
}

func newBridgeListCmd(a *App) *cobra.Command {
	o := &bridgeOptions{App: a}
	return &cobra.Command{
		Use:   "list",
		Short: "List the bridges (never their passwords)",
		Example: `  sudo mosqprov bridge list
  sudo mosqprov bridge list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runBridgeList(cmd.Context(), o) },
	}
}

// ParseTopicFlag reads "PATTERN DIRECTION [QOS [LOCAL REMOTE]]".
func ParseTopicFlag(s string) (bridge.Topic, error) {
	w := strings.Fields(s)
	if len(w) != 2 && len(w) != 3 && len(w) != 5 {
		return bridge.Topic{}, errs.Invalid("--topic", "%q: want 'PATTERN DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]'", s)
	}
	unq := func(s string) string {
		if s == `""` {
			return ""
		}
		return s
	}
	t := bridge.Topic{Pattern: unq(w[0]), Direction: bridge.Direction(w[1])}
	if len(w) >= 3 {
		q, err := strconv.Atoi(w[2])
		if err != nil {
			return t, errs.Invalid("--topic", "%q: QoS %q is not 0, 1 or 2", s, w[2])
		}
		t.QoS = q
	}
	if len(w) == 5 {
		t.LocalPrefix, t.RemotePrefix = unq(w[3]), unq(w[4])
	}
	if err := t.Validate("topic"); err != nil {
		problem := err.Error()
		if ie, ok := err.(*errs.InputError); ok {
			problem = strings.TrimPrefix(ie.Field, "topic.") + " " + ie.Problem
		}
		return t, errs.Invalid("--topic", "%q: %s", s, problem)
	}
	return t, nil
}

// readBridgeFile reads a TLS file named by a flag, capped.
func readBridgeFile(flag, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > bridge.MaxFile {
		return nil, errs.Invalid(flag, "%s is larger than %d bytes", path, bridge.MaxFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errs.Invalid(flag, "can't read %s: %v", path, errs.PathCause(err))
	}
	return data, nil
}

func (o *bridgeOptions) build() (bridge.Bridge, error) {
	b := bridge.Bridge{
		Name: o.name, Addresses: o.addresses, SystemCA: o.systemCA, TLSVersion: o.tlsVersion,
		InsecurePlainTCP: o.plainTCP, Username: o.username, Protocol: o.protocol, ClientID: o.clientID,
		KeepAlive: o.keepAlive, StartType: o.startType, Source: bridge.SourceCLI,
	}
	if err := bridge.ValidateName(b.Name); err != nil {
		return b, errs.Invalid("NAME", "%s", err.Error())
	}
	for _, f := range []struct {
		flag string
		v    bool
		dst  **bool
	}{{"cleansession", o.cleanSession, &b.CleanSession}, {"notifications", o.notifications, &b.Notifications}, {"try-private", o.tryPrivate, &b.TryPrivate}, {"outgoing-retain", o.outRetain, &b.OutgoingRetain}} {
		if o.set[f.flag] {
			v := f.v
			*f.dst = &v
		}
	}
	for _, s := range o.topics {
		t, err := ParseTopicFlag(s)
		if err != nil {
			return b, err
		}
		b.Topics = append(b.Topics, t)
	}
	var err error
	if b.CA, err = readBridgeFile("--ca-file", o.caFile); err != nil {
		return b, err
	}
	if b.Cert, err = readBridgeFile("--cert", o.certFile); err != nil {
		return b, err
	}
	if b.Key, err = readBridgeFile("--key", o.keyFile); err != nil {
		return b, err
	}
	if b.ClientID == "" {
		if b.ClientID, err = plan.DefaultClientID(o.Sys, b.Name); err != nil {
			return b, err
		}
	}
	// Everything but the password first, so a bad flag never asks for it.
	if err := b.Validate(); err != nil {
		return b, bridgeFlagError(err)
	}
	if o.passwordStdin && b.Username == "" {
		return b, errs.Invalid("--password-stdin", "only used with --username")
	}
	if b.Username != "" {
		pw, err := o.ReadSecret("remote password of bridge "+b.Name, o.passwordStdin, BridgePasswordEnv, true)
		if err != nil {
			return b, err
		}
		if err := bridge.ValidatePassword(pw); err != nil {
			if ie, ok := err.(*errs.InputError); ok {
				return b, errs.Invalid("remote password", "%s", ie.Problem)
			}
			return b, err
		}
		b.Password = pw
	}
	return b, nil
}

// bridgeFlagError names the flag of a bridge field.
func bridgeFlagError(err error) error {
	ie, ok := err.(*errs.InputError)
	if !ok {
		return err
	}
	field := ie.Field
	for from, to := range map[string]string{
		"addresses": "--address", "topics": "--topic", "tls.ca_file": "--ca-file", "tls.cert_file": "--cert", "tls.key_file": "--key",
		"tls.version": "--tls-version", "tls": "--ca-file/--system-ca", "insecure_plain_tcp": "--insecure-plain-tcp", "username": "--username",
		"password": "--username", "protocol": "--protocol", "client_id": "--client-id", "keepalive": "--keepalive", "start_type": "--start-type",
	} {
		if field == from || strings.HasPrefix(field, from+"[") || strings.HasPrefix(field, from+".") {
			field = to + strings.TrimPrefix(field, from)
			break
		}
	}
	return errs.Invalid(field, "%s", ie.Problem)
}

func runBridgeAdd(ctx context.Context, o *bridgeOptions) error {
	b, err := o.build()
	if err != nil {
		return err
	}
	return o.edit(ctx, "bridge "+b.Name, func(list []bridge.Bridge) ([]bridge.Bridge, string) {
		for i := range list {
			if list[i].Name == b.Name {
				list[i] = b
				return list, ""
			}
		}
		return append(list, b), ""
	})
}

func runBridgeRm(ctx context.Context, o *bridgeOptions) error {
	if err := bridge.ValidateName(o.name); err != nil {
		return errs.Invalid("NAME", "%s", err.Error())
	}
	return o.edit(ctx, "bridge "+o.name, func(list []bridge.Bridge) ([]bridge.Bridge, string) {
		var out []bridge.Bridge
		for _, b := range list {
			if b.Name != o.name {
				out = append(out, b)
			}
		}
		if len(out) == len(list) {
			return list, "no such bridge"
		}
		return out, ""
	})
}

// edit converges the bridges file to what change makes of the current
// bridges, and restarts a running broker once (bridges are read at start).
func (o *bridgeOptions) edit(ctx context.Context, what string, change func([]bridge.Bridge) ([]bridge.Bridge, string)) error {
	list, err := bridge.Read(o.Sys)
	if err != nil {
		return err
	}
	list, note := change(list)
	res, err := bridge.Converge(o.Sys, list)
	if err != nil {
		return bridgeFlagError(err)
	}
	if len(res.Changes) == 0 {
		detail := what
		if note != "" {
			detail += ": " + note
		}
		o.Infof("%s: nothing to do (no bridges file)", detail)
	}
	for i, c := range res.Changes {
		if c.Path == bridge.File {
			res.Changes[i].Detail = what
			if note != "" {
				res.Changes[i].Detail += ": " + note
			}
		}
	}
	o.Take(res)
	if o.noRestart && res.Need != system.NeedNothing {
		o.Infof("not restarting the broker (--no-restart): it reads bridges only when it starts")
		return nil
	}
	return o.Settle(ctx)
}

type bridgeListed struct {
	File    string          `json:"file"`
	Bridges []bridge.Bridge `json:"bridges"`
}

func runBridgeList(_ context.Context, o *bridgeOptions) error {
	list, err := bridge.Read(o.Sys)
	if err != nil {
		return err
	}
	if list == nil {
		list = []bridge.Bridge{}
	}
	o.Result(bridgeListed{File: bridge.File, Bridges: list}, func(w io.Writer) {
		if len(list) == 0 {
			fmt.Fprintf(w, "no bridges in %s\n", bridge.File)
			return
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDRESSES\tTLS\tUSER\tCLIENT ID\tTOPICS\tFROM")
		for _, b := range list {
			tls := "plain TCP"
			switch {
			case len(b.Cert) > 0:
				tls = "client cert"
			case b.SystemCA:
				tls = "system CA"
			case len(b.CA) > 0:
				tls = "CA file"
			}
			user := b.Username
			if user == "" {
				user = "-"
			}
			var topics []string
			for _, t := range b.Topics {
				topics = append(topics, topicString(t))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, strings.Join(b.Addresses, " "), tls, user, b.ClientID, strings.Join(topics, ", "), b.Source)
		}
		tw.Flush()
	})
	return nil
}

func topicString(t bridge.Topic) string {
	q := func(s string) string {
		if s == "" {
			return `""`
		}
		return s
	}
	s := fmt.Sprintf("%s %s %d", q(t.Pattern), t.Direction, t.QoS)
	if t.LocalPrefix != "" || t.RemotePrefix != "" {
		s += " " + q(t.LocalPrefix) + " " + q(t.RemotePrefix)
	}
	return s
}
