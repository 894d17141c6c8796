// Package probe checks a running Mosquitto broker the way its clients see it:
// it connects with a real MQTT client (paho) over TCP, TLS, WebSockets and
// WebSockets over TLS, and checks the certificate a client would be handed,
// that anonymous clients are refused, and that a user can publish and
// receive a message.
package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// Scheme is how a listener is spoken to.
type Scheme string

const (
	MQTT  Scheme = "mqtt"  // plain MQTT over TCP
	MQTTS Scheme = "mqtts" // MQTT over TLS
	WS    Scheme = "ws"    // MQTT over WebSockets
	WSS   Scheme = "wss"   // MQTT over WebSockets over TLS
)

// ParseScheme accepts the schemes clients use in broker URLs.
func ParseScheme(s string) (Scheme, error) {
	switch strings.ToLower(s) {
	case "mqtt", "tcp":
		return MQTT, nil
	case "mqtts", "ssl", "tls":
		return MQTTS, nil
	case "ws":
		return WS, nil
	case "wss":
		return WSS, nil
	}
	return "", fmt.Errorf("%q is not mqtt, mqtts, ws or wss", s)
}

// TLS reports whether the scheme starts with a TLS handshake.
func (s Scheme) TLS() bool { return s == MQTTS || s == WSS }

// WebSocket reports whether MQTT travels in WebSocket frames.
func (s Scheme) WebSocket() bool { return s == WS || s == WSS }

// Target is one listener to check.
type Target struct {
	// Name labels the listener in reports ("mqtts", "websockets-tls").
	Name   string
	Scheme Scheme
	// Host is the address dialled: a name or an IP (IPv6 without brackets).
	Host string
	Port int
	// Path is the WebSocket request path. Mosquitto ignores it; clients such
	// as mqtt.js send /mqtt, so that is the default.
	Path string
}

// URL is the broker URL a client would be configured with.
func (t Target) URL() string {
	u := url.URL{Scheme: string(t.Scheme), Host: net.JoinHostPort(t.Host, strconv.Itoa(t.Port))}
	if t.Scheme.WebSocket() {
		u.Path = t.Path
		if u.Path == "" {
			u.Path = "/mqtt"
		}
	}
	return u.String()
}

// Options say what the listener is expected to do.
type Options struct {
	// CA is the PEM bundle a client trusts. Empty means the system's roots
	// (a certificate from a public CA).
	CA []byte
	// ServerName is the name a client connects with: it is sent as SNI and
	// must be in the certificate. Empty means Target.Host.
	ServerName string
	// Names are further host names and IP addresses clients use; each must be
	// in the certificate.
	Names []string
	// AllowAnonymous is whether the broker is meant to accept clients without
	// a user name. When false, an anonymous client must get CONNACK "not
	// authorised".
	AllowAnonymous bool
	// User and Password, when User is set, are used for a publish/subscribe
	// round trip on Topic.
	User     string
	Password string
	// Topic for the round trip; a random suffix is added so concurrent runs
	// don't see each other's messages. Default "mosqprov/verify".
	Topic string
	// Timeout bounds each step (dial, handshake, CONNACK, message). Default 5s.
	Timeout time.Duration
	// WarnDays is how close to expiry the certificate may get before the
	// expiry check warns. Default 30.
	WarnDays int
	// ClientCert is presented on TLS listeners (mutual TLS).
	ClientCert *tls.Certificate
	// NeedClientCert says the listener requires a client certificate: without
	// ClientCert only the server side (handshake, chain, names, expiry) is
	// checked.
	NeedClientCert bool
	// Now replaces the clock (tests).
	Now func() time.Time
}

// Status is the outcome of one check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Check names, in the order they run.
const (
	CheckConnect   = "connect"
	CheckTLS       = "tls"
	CheckChain     = "chain"
	CheckName      = "name"
	CheckExpiry    = "expiry"
	CheckAnonymous = "anonymous"
	CheckAuth      = "auth"
	CheckRoundtrip = "roundtrip"
)

// Check is one thing that was tried.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Result is what one listener did.
type Result struct {
	Listener string  `json:"listener"`
	URL      string  `json:"url"`
	OK       bool    `json:"ok"`
	Reason   string  `json:"reason,omitempty"`
	Checks   []Check `json:"checks"`
	// DaysLeft and NotAfter describe the server certificate (TLS only).
	DaysLeft *int       `json:"days_left,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
}

func (r *Result) add(name string, st Status, format string, args ...any) {
	c := Check{Name: name, Status: st, Detail: fmt.Sprintf(format, args...)}
	r.Checks = append(r.Checks, c)
	if st == Fail {
		if r.OK {
			r.Reason = name + ": " + c.Detail
		}
		r.OK = false
	}
}

// Warnings lists the checks that warned.
func (r Result) Warnings() []Check {
	var w []Check
	for _, c := range r.Checks {
		if c.Status == Warn {
			w = append(w, c)
		}
	}
	return w
}

// Probe checks one listener. It never returns an error: every failure is a
// check in the result, with the reason a person can act on.
func Probe(ctx context.Context, t Target, o Options) Result {
	o = o.withDefaults(t)
	r := Result{Listener: t.Name, URL: t.URL(), OK: true}
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))

	d := net.Dialer{Timeout: o.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		r.add(CheckConnect, Fail, "%s", dialReason(addr, err))
		return r
	}
	r.add(CheckConnect, OK, "%s accepts connections", addr)

	var tlsConf *tls.Config
	trusted := true
	if t.Scheme.TLS() {
		tlsConf, trusted = checkTLS(ctx, conn, &r, o)
		if tlsConf == nil {
			return r
		}
		if o.NeedClientCert && o.ClientCert == nil {
			r.add(CheckAnonymous, Skip, "the listener requires a client certificate; give one (--cert, --key) to check MQTT")
			return r
		}
	} else {
		conn.Close()
	}

	if stop := checkAnonymous(ctx, t, o, tlsConf, &r); stop {
		return r
	}
	if o.User == "" {
		return r
	}
	if !trusted {
		r.add(CheckAuth, Skip, "credentials not sent: the server's certificate did not verify")
		return r
	}
	roundtrip(ctx, t, o, tlsConf, &r)
	return r
}

func (o Options) withDefaults(t Target) Options {
	if o.ServerName == "" {
		o.ServerName = t.Host
	}
	if o.Topic == "" {
		o.Topic = "mosqprov/verify"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.WarnDays == 0 {
		o.WarnDays = certs.DefaultRenewBefore
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func dialReason(addr string, err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens on " + addr + " (connection refused): the broker is down or has no listener on this port"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer from " + addr + " (timed out): a firewall, or the wrong address"
	}
	return "cannot connect to " + addr + ": " + err.Error()
}

// checkTLS does the handshake on conn and checks the chain, names and expiry
// itself, so each problem is reported on its own rather than as the first
// error crypto/tls hits. It returns the config MQTT connections use: one that
// verifies the way a client does when everything checked out, else one pinned
// to the exact certificate seen, so the anonymous check still runs (it sends
// no secret) while credentials are never sent to an unverified server.
func checkTLS(ctx context.Context, conn net.Conn, r *Result, o Options) (*tls.Config, bool) {
	var certs []tls.Certificate
	if o.ClientCert != nil {
		certs = []tls.Certificate{*o.ClientCert}
	}
	raw := tls.Client(conn, &tls.Config{
		ServerName:         o.ServerName,
		InsecureSkipVerify: true, // verified below, check by check
		MinVersion:         tls.VersionTLS12,
		Certificates:       certs,
	})
	defer raw.Close()
	hctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := raw.HandshakeContext(hctx); err != nil {
		r.add(CheckTLS, Fail, "TLS handshake failed: %v (is this a TLS listener?)", err)
		return nil, false
	}
	state := raw.ConnectionState()
	r.add(CheckTLS, OK, "%s, %s", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
	if len(state.PeerCertificates) == 0 {
		r.add(CheckChain, Fail, "the server sent no certificate")
		return nil, false
	}
	leaf := state.PeerCertificates[0]

	roots, rootsName, err := rootPool(o.CA)
	if err != nil {
		r.add(CheckChain, Fail, "%v", err)
		return nil, false
	}
	now := o.Now()
	trusted := true
	verr := pki.Verify(leaf, roots, state.PeerCertificates[1:], x509.ExtKeyUsageServerAuth, now)
	switch {
	case verr == nil:
		r.add(CheckChain, OK, "signed by %s (trusted by %s)", leaf.Issuer.CommonName, rootsName)
	default:
		trusted = false
		r.add(CheckChain, Fail, "%s", chainReason(verr, leaf, rootsName, now))
	}

	names := append([]string{o.ServerName}, o.Names...)
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if err := leaf.VerifyHostname(n); err != nil {
			trusted = trusted && n != o.ServerName
			r.add(CheckName+":"+n, Fail, "%s is not in the certificate (it has %s): clients connecting with that name refuse it", n, sanList(leaf))
		} else {
			r.add(CheckName+":"+n, OK, "in the certificate")
		}
	}

	// pkg/pki's count, as `cert status` gives it; after expiry -1 is
	// "less than a day ago", so whole days ago are -days-1.
	days := pki.DaysLeft(leaf, now)
	na := leaf.NotAfter.UTC()
	r.DaysLeft, r.NotAfter = &days, &na
	switch {
	case now.After(leaf.NotAfter):
		r.add(CheckExpiry, Fail, "expired on %s (%d days ago)", na.Format("2006-01-02"), -days-1)
	case now.Before(leaf.NotBefore):
		r.add(CheckExpiry, Fail, "not valid before %s (is this host's clock right?)", leaf.NotBefore.UTC().Format("2006-01-02 15:04"))
	case days < o.WarnDays:
		r.add(CheckExpiry, Warn, "expires on %s, in %d days", na.Format("2006-01-02"), days)
	default:
		r.add(CheckExpiry, OK, "expires on %s, in %d days", na.Format("2006-01-02"), days)
	}

	if trusted {
		return &tls.Config{RootCAs: roots, ServerName: o.ServerName, MinVersion: tls.VersionTLS12, Certificates: certs}, true
	}
	seenRaw := leaf.Raw
	return &tls.Config{
		Certificates:       certs,
		ServerName:         o.ServerName,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, seenRaw) {
				return errors.New("the server presented a different certificate than a moment ago")
			}
			return nil
		},
	}, false
}

const systemRoots = "the system's CAs"

func rootPool(ca []byte) (*x509.CertPool, string, error) {
	if len(ca) == 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, "", fmt.Errorf("no CA given and the system's roots can't be read: %v", err)
		}
		return pool, systemRoots, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, "", errors.New("the CA file holds no PEM certificate")
	}
	name := "the given CA"
	if c, err := pki.ParseCertificate(ca); err == nil && c.Subject.CommonName != "" {
		name = "CA " + strconv.Quote(c.Subject.CommonName)
	}
	return pool, name, nil
}

func chainReason(err error, leaf *x509.Certificate, rootsName string, now time.Time) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		if rootsName == systemRoots {
			// The usual cause: a private CA (mosqprov's) not handed to verify.
			return fmt.Sprintf("not signed by a CA this machine trusts (issuer is %q): for a private CA, give its certificate with --ca", leaf.Issuer.String())
		}
		return fmt.Sprintf("not signed by %s (issuer is %q): clients trusting that CA refuse it", rootsName, leaf.Issuer.String())
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		if now.After(leaf.NotAfter) {
			return "the certificate expired on " + leaf.NotAfter.UTC().Format("2006-01-02")
		}
		return "a certificate in the chain is expired or not yet valid: " + ci.Error()
	case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
		return "the certificate is not for TLS servers (extKeyUsage lacks serverAuth)"
	}
	return err.Error()
}

func sanList(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no subjectAltName, only CN " + strconv.Quote(c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}

func checkAnonymous(ctx context.Context, t Target, o Options, tlsConf *tls.Config, r *Result) (stop bool) {
	c, err := connect(ctx, t, o, tlsConf, "", "")
	if c != nil {
		defer c.Disconnect(0)
	}
	refused := errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword)
	switch {
	case err != nil && !refused:
		r.add(CheckAnonymous, Fail, "no MQTT answer: %v", err)
		return true
	case o.AllowAnonymous && refused:
		r.add(CheckAnonymous, Fail, "anonymous clients are refused (%v) but anonymous access is meant to be on", err)
	case o.AllowAnonymous:
		r.add(CheckAnonymous, OK, "anonymous clients are accepted, as configured")
	case refused:
		r.add(CheckAnonymous, OK, "anonymous clients are refused (CONNACK: %v)", err)
	default:
		r.add(CheckAnonymous, Fail, "anonymous clients are accepted: anyone who reaches this port can publish and subscribe")
	}
	return false
}

func roundtrip(ctx context.Context, t Target, o Options, tlsConf *tls.Config, r *Result) {
	c, err := connect(ctx, t, o, tlsConf, o.User, o.Password)
	if err != nil {
		switch {
		case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
			r.add(CheckAuth, Fail, "user %q was refused (CONNACK: %v): wrong password or unknown user", o.User, err)
		default:
			r.add(CheckAuth, Fail, "user %q could not connect: %v", o.User, err)
		}
		return
	}
	defer c.Disconnect(100)
	r.add(CheckAuth, OK, "user %q connected", o.User)

	topic := o.Topic + "/" + randomHex(6)
	payload := "mosqprov verify " + randomHex(8)
	got := make(chan struct{}, 1)
	st := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if string(m.Payload()) == payload {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	if err := wait(ctx, st, o.Timeout); err != nil {
		r.add(CheckRoundtrip, Fail, "subscribe to %s: %v", topic, err)
		return
	}
	// MQTT 3.1.1 lets a broker refuse a denied subscription with 0x80.
	// Mosquitto 2.0.11 with an acl_file doesn't (checked): it grants the
	// subscription and delivers nothing, so there a denial is the timeout
	// below.
	if sub, ok := st.(*mqtt.SubscribeToken); ok {
		if q, found := sub.Result()[topic]; found && q == 0x80 {
			r.add(CheckRoundtrip, Fail, "the broker refused the subscription to %s: an ACL denies user %q", topic, o.User)
			return
		}
	}
	pt := c.Publish(topic, 1, false, payload)
	if err := wait(ctx, pt, o.Timeout); err != nil {
		r.add(CheckRoundtrip, Fail, "publish to %s: %v", topic, err)
		return
	}
	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	select {
	case <-got:
		r.add(CheckRoundtrip, OK, "published and received a message on %s", topic)
	case <-timer.C:
		r.add(CheckRoundtrip, Fail, "the message published on %s did not come back within %s: an ACL may deny user %q read or write there (use --topic)", topic, o.Timeout, o.User)
	case <-ctx.Done():
		r.add(CheckRoundtrip, Fail, "%v", ctx.Err())
	}
}

func wait(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-timer.C:
		return fmt.Errorf("no answer within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connect opens one MQTT session. Reconnects and retries are off: a check
// wants the first answer.
func connect(ctx context.Context, t Target, o Options, tlsConf *tls.Config, user, password string) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions()
	scheme := map[Scheme]string{MQTT: "tcp", MQTTS: "ssl", WS: "ws", WSS: "wss"}[t.Scheme]
	u, err := url.Parse(t.URL())
	if err != nil {
		return nil, err
	}
	u.Scheme = scheme
	opts.AddBroker(u.String())
	opts.SetClientID("mosqprov-verify-" + randomHex(6))
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	opts.SetConnectTimeout(o.Timeout)
	opts.SetWriteTimeout(o.Timeout)
	opts.SetCleanSession(true)
	opts.SetProtocolVersion(4)
	if user != "" {
		opts.SetUsername(user)
		opts.SetPassword(password)
	}
	if tlsConf != nil {
		opts.SetTLSConfig(tlsConf.Clone())
	}
	// Dial directly: an HTTP(S)_PROXY meant for the web must not carry
	// MQTT to a broker on the LAN.
	opts.SetCustomOpenConnectionFn(func(uri *url.URL, co mqtt.ClientOptions) (net.Conn, error) {
		return openConn(ctx, uri, co.TLSConfig, o.Timeout)
	})
	c := mqtt.NewClient(opts)
	if err := wait(ctx, c.Connect(), o.Timeout+time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

func openConn(ctx context.Context, uri *url.URL, tlsConf *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	switch uri.Scheme {
	case "tcp":
		return d.DialContext(ctx, "tcp", uri.Host)
	case "ssl":
		td := tls.Dialer{NetDialer: d, Config: tlsConf}
		return td.DialContext(ctx, "tcp", uri.Host)
	case "ws", "wss":
		var tc *tls.Config
		if uri.Scheme == "wss" {
			tc = tlsConf
		}
		return mqtt.NewWebsocket(uri.String(), tc, timeout, nil, &mqtt.WebsocketOptions{Proxy: noProxy})
	}
	return nil, fmt.Errorf("unknown scheme %q", uri.Scheme)
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
