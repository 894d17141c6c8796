package doctor

// The listeners of the broker's whole configuration: clashes, plain
// listeners beyond loopback, WebSockets binds.

import (
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

func (c *Checker) checkListeners() {
	if c.cfg == nil {
		return
	}
	ls := c.cfg.Listeners
	anonymous := false
	if s, ok := c.setting("allow_anonymous"); ok {
		anonymous = s.Value == "true"
	}
	for i, l := range ls {
		where := fmt.Sprintf("%s:%d", l.File, l.Line)
		for _, o := range ls[:i] {
			if o.Port == l.Port && (o.Bind == l.Bind || conf.IsWildcard(o.Bind) || conf.IsWildcard(l.Bind) || o.WebSockets || l.WebSockets) {
				c.add(Finding{ID: IDListenerClash, Severity: Error, Subject: where,
					Problem: fmt.Sprintf("port %d is declared again here; it is already at %s:%d", l.Port, o.File, o.Line),
					Why:     "the broker can't open the same port twice: it stops with \"Address already in use\"",
					Fix:     clashFix(o, l)})
			}
		}
		loop := conf.IsLoopback(l.Bind)
		wsOld := l.WebSockets && c.wsBindIgnored()
		if !l.TLS && (!loop || wsOld) {
			kind := "plain MQTT"
			if l.WebSockets {
				kind = "plain WebSockets"
			}
			reach := "every interface"
			if !conf.IsWildcard(l.Bind) {
				reach = l.Bind
			}
			if loop {
				reach = "every interface (mosquitto " + c.ver + " ignores the bind address of WebSocket listeners)"
			}
			sev := Warning
			why := "user names and passwords cross the network in clear; anyone on the LAN can read them"
			if anonymous {
				sev, why = Error, "anonymous access is on: anyone on the network can publish and subscribe, in clear"
			}
			c.add(Finding{ID: IDPlainListener, Severity: sev, Subject: where,
				Problem: fmt.Sprintf("%s listener on port %d is reachable on %s", kind, l.Port, reach),
				Why:     why,
				Fix:     plainFix(l)})
		}
		if l.WebSockets && !conf.IsWildcard(l.Bind) && c.wsBindIgnored() && !(loop && !l.TLS) {
			c.add(Finding{ID: IDWebSocketBind, Severity: Warning, Subject: where,
				Problem: fmt.Sprintf("WebSocket listener on port %d is bound to %s, but mosquitto %s listens on every interface for WebSocket listeners", l.Port, l.Bind, c.ver),
				Why:     "the port is reachable from the network whatever the bind address (upstream issues 3045 and 2085)",
				Fix:     wsFirewallFix(l)})
		}
	}
}

// ours reports whether a listener is in mosqprov's drop-in, i.e. comes
// from broker.yaml: it is fixed there, not by editing the file.
func ours(l conf.Declared) bool { return l.File == layout.DropIn }

// wsBindIgnored: mosquitto up to 2.0.11 (Debian 12, Raspberry Pi OS
// bookworm) listens on every interface for a WebSocket listener whatever
// its bind address (upstream issues 3045 and 2085; reported gone in 2.0.12).
func (c *Checker) wsBindIgnored() bool {
	v, err := apt.ParseVersion(c.ver)
	if err != nil {
		return false
	}
	return !v.AtLeast(2, 1) && (v.Major < 2 || v.Patch <= 11)
}
