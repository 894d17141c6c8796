package probe

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/spec"
)

// Expectations are what verify checks: the listeners and what is expected
// of them (pkg/plan is the broker's plan, a different thing).
type Expectations struct {
	Targets []Target
	// Names are every host name and IP clients may use: each must be in the
	// certificate of every TLS listener.
	Names          []string
	ServerName     string
	AllowAnonymous bool
	// MutualTLS marks the targets (by index) that require a client certificate.
	MutualTLS map[int]bool
	// LoopbackOnly marks the targets (by index) bound to loopback on a
	// broker checked from another machine: unreachable by design.
	LoopbackOnly map[int]bool
	// Topic is the round-trip prefix the spec's ACL allows the user; ""
	// for the default.
	Topic string
}

// FromSpec turns a spec into targets. host is where to connect: "" means
// the broker on this machine, reached on each listener's bind address, or on
// loopback when it listens on every interface; clients' names are still
// checked against the certificate (SNI and host name come from the spec).
func FromSpec(s *spec.Spec, host string) Expectations {
	p := Expectations{AllowAnonymous: s.AllowAnonymous, MutualTLS: map[int]bool{}, LoopbackOnly: map[int]bool{}}
	names, ips := s.CertNames()
	p.Names = append(names, ips...)
	p.ServerName = host
	if p.ServerName == "" && len(p.Names) > 0 {
		p.ServerName = p.Names[0]
	}
	for i, l := range s.Listeners {
		dial := host
		if dial == "" {
			dial = conf.LocalHost(l.Bind)
		}
		port := l.Port
		if port == 0 {
			port = spec.DefaultPort(l.Type)
		}
		p.Targets = append(p.Targets, Target{Name: listenerName(l, port), Scheme: Scheme(l.Type), Host: dial, Port: port})
		if l.MutualTLS {
			p.MutualTLS[i] = true
		}
		if host != "" && !conf.IsLoopback(host) && conf.IsLoopback(l.Bind) {
			p.LoopbackOnly[i] = true
		}
	}
	return p
}

func listenerName(l spec.Listener, port int) string {
	return l.Type + ":" + strconv.Itoa(port)
}

// Skipped is the result for a listener that is not checked, and why.
func Skipped(t Target, why string) Result {
	return Result{Listener: t.Name, URL: t.URL(), OK: true, Checks: []Check{{Name: CheckConnect, Status: Skip, Detail: why}}}
}

// ParseListener reads a --listener value: TYPE[:PORT] ("mqtts", "wss:9443").
func ParseListener(v string) (Scheme, int, error) {
	typ, portText, hasPort := strings.Cut(v, ":")
	scheme, err := ParseScheme(typ)
	if err != nil {
		return "", 0, err
	}
	port := spec.DefaultPort(string(scheme))
	if hasPort {
		port, err = strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", portText)
		}
	}
	return scheme, port, nil
}

// ACLTopic is a round-trip topic prefix the spec's ACL lets user both
// publish and subscribe to, or "" when the spec has no ACL (every topic is
// allowed) or grants no such topic. Only filters ending in # qualify: the
// probe adds a random level below the prefix. A rule for every user
// (pattern) counts with %u as the user; %c can't, the client id is random.
func ACLTopic(s *spec.Spec, user string) string {
	var grants, denies []string
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
		both := append([]string(nil), r.ReadWrite...)
		for _, t := range r.Read {
			if slices.Contains(r.Write, t) {
				both = append(both, t)
			}
		}
		for _, t := range both {
			if !strings.Contains(t, "%c") {
				grants = append(grants, sub(t))
			}
		}
		for _, t := range r.Deny {
			denies = append(denies, sub(t))
		}
	}
	for _, g := range grants {
		if !strings.HasSuffix(g, "#") {
			continue
		}
		levels := strings.Split(strings.TrimSuffix(strings.TrimSuffix(g, "#"), "/"), "/")
		for i, l := range levels {
			if l == "+" {
				levels[i] = "mosqprov"
			}
		}
		topic := strings.Join(append(levels, "mosqprov-verify"), "/")
		if g == "#" {
			topic = "mosqprov/verify"
		}
		if !slices.ContainsFunc(denies, func(d string) bool { return matches(d, topic+"/x") }) {
			return topic
		}
	}
	return ""
}

// matches reports whether an MQTT topic filter matches a topic name.
func matches(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range f {
		switch {
		case l == "#":
			return true
		case i >= len(t):
			return false
		case l != "+" && l != t[i]:
			return false
		}
	}
	return len(f) == len(t)
}
