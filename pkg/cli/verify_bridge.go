package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/probe"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/status"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// verifyBridges checks the bridges of the broker on this machine (from its
// bridges file): each one's state and, with --user, a message through it.
// Bridges are not checked from another machine (--host) or with --listener.
func (o *verifyOptions) verifyBridges(ctx context.Context, want probe.Expectations, opts probe.Options) []probe.BridgeResult {
	if o.Host != "" || len(o.Listeners) > 0 {
		return nil
	}
	bridges, err := bridge.Read(o.Sys)
	if err != nil {
		o.Warn("bridges not checked: %v", err)
		return nil
	}
	if len(bridges) == 0 {
		return nil
	}
	login, why := o.bridgeLogin(want, opts)
	var out []probe.BridgeResult
	for _, b := range bridges {
		if login == nil {
			r := probe.BridgeResult{Name: b.Name, ClientID: b.ClientID, State: "not checked", OK: true}
			r.Checks = append(r.Checks, probe.Check{Name: probe.CheckBridgeState, Status: probe.Skip, Detail: why})
			out = append(out, r)
			continue
		}
		out = append(out, probe.ProbeBridge(ctx, b, *login))
	}
	return out
}

// bridgeLogin is how verify reads the bridges' states: as --user on a
// listener of the spec (then also a message through each bridge), else as
// the status identity (status_reader: true) on its loopback listener, which
// may read $SYS and nothing else. Without either it says how to get the
// check: anonymous clients can't read $SYS.
func (o *verifyOptions) bridgeLogin(want probe.Expectations, opts probe.Options) (*probe.BridgeOptions, string) {
	if opts.User != "" {
		for i, t := range want.Targets {
			if want.LoopbackOnly[i] || want.MutualTLS[i] && opts.ClientCert == nil || t.Scheme.WebSocket() {
				continue
			}
			bo := &probe.BridgeOptions{Local: t, Options: opts}
			if o.spec != nil {
				s, user := o.spec, opts.User
				bo.Allowed = func(topic string, write bool) bool { return probe.ACLAllows(s, user, topic, write) }
			}
			return bo, ""
		}
		return nil, "no MQTT listener to read its state on"
	}
	if o.spec == nil || !o.spec.StatusReader {
		return nil, "needs a login: pass --user NAME, or set status_reader: true in broker.yaml and apply (verify then reads it as " + status.User + ")"
	}
	bo, err := statusBridgeLogin(o.Sys, o.spec, opts)
	if err != nil {
		return nil, fmt.Sprintf("%v; or pass --user NAME", err)
	}
	return bo, ""
}

// statusBridgeLogin is the status identity on its loopback listener
// (statusListener), reading bridge states only; opts gives the timeout.
func statusBridgeLogin(sys system.System, s *spec.Spec, opts probe.Options) (*probe.BridgeOptions, error) {
	t, err := statusListener(s)
	if err != nil {
		return nil, errors.New("the status identity needs an mqtt or mqtts listener on 127.0.0.1")
	}
	pw, err := status.ReadSecret(sys)
	if err != nil {
		return nil, err
	}
	lo := opts
	lo.User, lo.Password, lo.ClientCert = status.User, pw, nil
	if t.Scheme.TLS() {
		ca, err := sys.ReadFile(layout.BrokerCACert)
		if err != nil {
			return nil, fmt.Errorf("read the broker's CA %s: %v", layout.BrokerCACert, err)
		}
		lo.CA, lo.ServerName = ca, s.Hostname
	}
	return &probe.BridgeOptions{Local: t, Options: lo, StateOnly: "needs --user NAME"}, nil
}

// statusBridgeStates reads each bridge's state as the status identity, for
// doctor: by bridge name, "connected", "not connected" or "unknown".
func statusBridgeStates(sys system.System, s *spec.Spec) func(context.Context, []bridge.Bridge) (map[string]string, error) {
	return func(ctx context.Context, bridges []bridge.Bridge) (map[string]string, error) {
		bo, err := statusBridgeLogin(sys, s, probe.Options{Timeout: 3 * time.Second})
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, b := range bridges {
			r := probe.ProbeBridge(ctx, b, *bo)
			out[b.Name] = r.State
			if r.State == "not checked" && len(r.Checks) > 0 {
				// notifications off, or the login failed: say why.
				out[b.Name] += " (" + r.Checks[0].Detail + ")"
			}
		}
		return out, nil
	}
}

func printVerifyBridges(w io.Writer, results []probe.BridgeResult, verbose bool) {
	if len(results) == 0 {
		return
	}
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	failed, connected := 0, 0
	for _, r := range results {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
			failed++
		}
		if r.State == "connected" {
			connected++
		}
		var parts []string
		for _, c := range r.Checks {
			switch {
			case c.Status == probe.Fail && !r.OK && r.Reason == c.Name+": "+c.Detail:
				parts = append(parts, r.Reason)
			case c.Name == probe.CheckBridgeState && c.Status == probe.OK:
				parts = append(parts, "connected")
			case c.Name == probe.CheckBridgeTrip && c.Status == probe.OK:
				parts = append(parts, "message through it ok")
			case c.Status == probe.Skip || c.Status == probe.Warn:
				parts = append(parts, c.Name+" not checked: "+c.Detail)
			}
		}
		fmt.Fprintf(w, "%s bridge %-*s %s\n", mark, width, r.Name, strings.Join(parts, ", "))
		if verbose {
			for _, c := range r.Checks {
				fmt.Fprintf(w, "     %-4s %s: %s\n", c.Status, c.Name, c.Detail)
			}
		}
	}
	noun := "bridges"
	if len(results) == 1 {
		noun = "bridge"
	}
	fmt.Fprintf(w, "%d %s: %d connected, %d failed\n", len(results), noun, connected, failed)
}
