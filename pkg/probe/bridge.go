package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/spec"
)

// Bridge check names.
const (
	CheckBridgeState = "state"
	CheckBridgeTrip  = "through the bridge"
)

// BridgeResult is one bridge as this broker sees it.
type BridgeResult struct {
	Name     string `json:"name"`
	ClientID string `json:"client_id"`
	// State is connected, not connected, unknown or not checked.
	State  string  `json:"state"`
	OK     bool    `json:"ok"`
	Reason string  `json:"reason,omitempty"`
	Checks []Check `json:"checks"`
}

func (r *BridgeResult) add(name string, st Status, format string, args ...any) {
	c := Check{Name: name, Status: st, Detail: fmt.Sprintf(format, args...)}
	r.Checks = append(r.Checks, c)
	if st == Fail && r.OK {
		r.OK = false
		r.Reason = name + ": " + c.Detail
	}
}

// BridgeOptions say how to reach this broker and which topics its user may use.
type BridgeOptions struct {
	// Local is a listener of this broker and Options the client there (User,
	// Password, CA, ServerName, Timeout, ClientCert).
	Local   Target
	Options Options
	// Allowed reports whether this broker's ACL lets Options.User write (or
	// read) topic; nil allows everything.
	Allowed func(topic string, write bool) bool
	// StateOnly reads the state and sends nothing through the bridge, with
	// this reason: Options.User may only read $SYS (mosqprov's status
	// identity).
	StateOnly string
}

// ProbeBridge reads the bridge's state where the broker publishes it
// ($SYS/broker/connection/CLIENT_ID/state, retained) as the user, and when
// the bridge is up, sends a message through it: published here and
// received on the remote broker for an out (or both) topic, or published
// on the remote and received here for an in topic. On the remote side it
// connects as the bridge itself (its address, CA, client certificate, user
// name and password from the bridges file), so the remote's ACL for the
// bridge's user decides, as it does for the bridge.
func ProbeBridge(ctx context.Context, b bridge.Bridge, o BridgeOptions) BridgeResult {
	r := BridgeResult{Name: b.Name, ClientID: b.ClientID, OK: true, State: "not checked"}
	lo := o.Options.withDefaults(o.Local)
	if lo.User == "" {
		r.add(CheckBridgeState, Skip, "needs --user: anonymous clients can't read %s", b.StateTopic())
		return r
	}
	if !b.NotificationsOn() {
		r.add(CheckBridgeState, Skip, "notifications are off for this bridge, so the broker does not publish its state")
		return r
	}
	localTLS, err := clientTLS(o.Local, lo)
	if err != nil {
		r.add(CheckBridgeState, Fail, "%v", err)
		return r
	}
	c, err := connect(ctx, o.Local, lo, localTLS, lo.User, lo.Password)
	if err != nil {
		r.add(CheckBridgeState, Fail, "user %q could not connect to %s: %v", lo.User, o.Local.URL(), err)
		return r
	}
	defer c.Disconnect(100)
	state := make(chan string, 1)
	tok := c.Subscribe(b.StateTopic(), 0, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case state <- string(m.Payload()):
		default:
		}
	})
	if err := wait(ctx, tok, lo.Timeout); err != nil {
		r.add(CheckBridgeState, Fail, "subscribe to %s: %v", b.StateTopic(), err)
		return r
	}
	timer := time.NewTimer(lo.Timeout)
	defer timer.Stop()
	select {
	case s := <-state:
		if s != "1" {
			r.State = "not connected"
			r.add(CheckBridgeState, Fail, "not connected (%s is %q): `mosqprov doctor` explains why from the broker's log", b.StateTopic(), s)
			return r
		}
		r.State = "connected"
		r.add(CheckBridgeState, OK, "connected (%s is 1, read as %s)", b.StateTopic(), lo.User)
	case <-timer.C:
		r.State = "unknown"
		r.add(CheckBridgeState, Warn, "no state on %s within %s: the ACL may not let user %q read it (grant read on $SYS/broker/connection/#), or the bridge never started", b.StateTopic(), lo.Timeout, lo.User)
		return r
	case <-ctx.Done():
		r.add(CheckBridgeState, Fail, "%v", ctx.Err())
		return r
	}
	if o.StateOnly != "" {
		r.add(CheckBridgeTrip, Skip, "%s", o.StateOnly)
		return r
	}
	roundtripBridge(ctx, c, b, o, lo, &r)
	return r
}

// roundtripBridge sends one message through the bridge, on the first
// topic rule this broker's ACL lets the user use.
func roundtripBridge(ctx context.Context, local mqtt.Client, b bridge.Bridge, o BridgeOptions, lo Options, r *BridgeResult) {
	allowed := o.Allowed
	if allowed == nil {
		allowed = func(string, bool) bool { return true }
	}
	suffix := randomHex(6)
	var rule *bridge.Topic
	var localTopic, remoteTopic string
	out := false
	for _, wantOut := range []bool{true, false} {
		for i := range b.Topics {
			t := b.Topics[i]
			if !(t.Direction == bridge.Both || wantOut && t.Direction == bridge.Out || !wantOut && t.Direction == bridge.In) {
				continue
			}
			concrete := concreteTopic(t.Pattern, suffix)
			lt, rt := t.LocalPrefix+concrete, t.RemotePrefix+concrete
			if allowed(lt, wantOut) {
				rule, localTopic, remoteTopic, out = &b.Topics[i], lt, rt, wantOut
				break
			}
		}
		if rule != nil {
			break
		}
	}
	if rule == nil {
		r.add(CheckBridgeTrip, Skip, "no topic of the bridge that this broker's ACL lets user %q use", lo.User)
		return
	}
	remote, err := connectRemote(ctx, b, lo)
	if err != nil {
		r.add(CheckBridgeTrip, Fail, "connecting to the remote as the bridge: %v", err)
		return
	}
	defer remote.Disconnect(100)
	pub, sub, pubTopic, subTopic, from, to := local, remote, localTopic, remoteTopic, "here", "the remote"
	if !out {
		pub, sub, pubTopic, subTopic, from, to = remote, local, remoteTopic, localTopic, "the remote", "here"
	}
	payload := "mosqprov verify bridge " + randomHex(8)
	got := make(chan struct{}, 1)
	st := sub.Subscribe(subTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if string(m.Payload()) == payload {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	if err := wait(ctx, st, lo.Timeout); err != nil {
		r.add(CheckBridgeTrip, Fail, "subscribe to %s on %s: %v", subTopic, to, err)
		return
	}
	if err := wait(ctx, pub.Publish(pubTopic, 1, false, payload), lo.Timeout); err != nil {
		r.add(CheckBridgeTrip, Fail, "publish to %s on %s: %v", pubTopic, from, err)
		return
	}
	timer := time.NewTimer(lo.Timeout)
	defer timer.Stop()
	select {
	case <-got:
		r.add(CheckBridgeTrip, OK, "a message on %s %s arrived on %s %s", pubTopic, from, subTopic, to)
	case <-timer.C:
		r.add(CheckBridgeTrip, Fail, "a message on %s %s did not arrive on %s %s within %s: the remote's ACL for the bridge's user %q may deny it", pubTopic, from, subTopic, to, lo.Timeout, b.Username)
	case <-ctx.Done():
		r.add(CheckBridgeTrip, Fail, "%v", ctx.Err())
	}
}

// concreteTopic turns a bridge pattern into a topic name below it.
func concreteTopic(pattern, suffix string) string {
	if pattern == "" {
		return ""
	}
	levels := strings.Split(pattern, "/")
	for i, l := range levels {
		switch l {
		case "+":
			levels[i] = "mosqprov-verify"
		case "#":
			levels[i] = "mosqprov-verify/" + suffix
		}
	}
	return strings.Join(levels, "/")
}

// clientTLS is the TLS a client of t uses (nil for plain listeners).
func clientTLS(t Target, o Options) (*tls.Config, error) {
	if !t.Scheme.TLS() {
		return nil, nil
	}
	pool, _, err := rootPool(o.CA)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{RootCAs: pool, ServerName: o.ServerName, MinVersion: tls.VersionTLS12}
	if o.ClientCert != nil {
		conf.Certificates = []tls.Certificate{*o.ClientCert}
	}
	return conf, nil
}

// connectRemote connects to the bridge's main address as the bridge.
func connectRemote(ctx context.Context, b bridge.Bridge, lo Options) (mqtt.Client, error) {
	host, port, err := bridge.SplitAddress(b.Addresses[0])
	if err != nil {
		return nil, err
	}
	t := Target{Name: "bridge " + b.Name, Scheme: MQTT, Host: host, Port: port}
	var conf *tls.Config
	if b.TLS() {
		t.Scheme = MQTTS
		conf = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if len(b.CA) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b.CA) {
				return nil, fmt.Errorf("bridge %s: no certificate in its CA file", b.Name)
			}
			conf.RootCAs = pool
		}
		if len(b.Cert) > 0 {
			pair, err := tls.X509KeyPair(b.Cert, b.Key)
			if err != nil {
				return nil, err
			}
			conf.Certificates = []tls.Certificate{pair}
		}
	}
	o := lo
	o.ServerName = host
	return connect(ctx, t, o, conf, b.Username, b.Password)
}

// ACLAllows reports whether the spec's ACL lets user write (or read)
// topic: a user or pattern rule grants it and no deny rule matches. With
// no rules every topic is allowed.
func ACLAllows(s *spec.Spec, user, topic string, write bool) bool {
	if len(s.ACL) == 0 {
		return true
	}
	granted := false
	for _, r := range s.ACL {
		var sub func(string) string
		switch {
		case r.User == user && !r.Pattern && !r.Anonymous:
			sub = func(t string) string { return t }
		case r.Pattern:
			sub = func(t string) string { return strings.ReplaceAll(t, "%u", user) }
		default:
			continue
		}
		for _, d := range r.Deny {
			if matches(sub(d), topic) {
				return false
			}
		}
		lists := [][]string{r.ReadWrite, r.Read}
		if write {
			lists = [][]string{r.ReadWrite, r.Write}
		}
		for _, l := range lists {
			for _, g := range l {
				if !strings.Contains(g, "%c") && matches(sub(g), topic) {
					granted = true
				}
			}
		}
	}
	return granted
}
