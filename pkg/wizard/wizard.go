// Package wizard asks a person the questions that make a broker.yaml, with
// answers detected from the host as defaults. It talks to the terminal only
// through Prompter, so the questions are tested with a scripted Prompter;
// Terminal is the one on a real terminal.
package wizard

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
)

// Option is one choice of a Select or MultiSelect, with the note shown beside it.
type Option struct {
	Value string
	Note  string
}

// Prompter asks one question at a time. Every method returns
// errs.ErrInterrupted when the person presses Ctrl-C.
type Prompter interface {
	// Input asks for a line of text; validate (may be nil) is called on the
	// answer and the question is asked again while it fails.
	Input(message, help, def string, validate func(string) error) (string, error)
	// Password asks for a secret without echo.
	Password(message, help string) (string, error)
	Confirm(message, help string, def bool) (bool, error)
	Select(message, help string, opts []Option, def string) (string, error)
	MultiSelect(message, help string, opts []Option, defs []string, validate func([]string) error) ([]string, error)
	// Say prints a line between questions.
	Say(format string, args ...any)
}

// Host is what the wizard detects defaults from.
type Host interface {
	Hostname() (string, error)
	// Addrs are the host's addresses other than loopback.
	Addrs() ([]net.IP, error)
}

// Run asks every question and returns the spec, validated. start is the
// existing broker.yaml (nil when there is none): its answers are the
// defaults, and what the wizard doesn't ask about is kept as it was.
func Run(p Prompter, h Host, start *spec.Spec) (*spec.Spec, error) {
	w := &wizard{p: p, h: h}
	if start == nil {
		w.s = spec.Default("")
		w.fresh = true
	} else {
		cp := *start
		w.s = &cp
	}
	for _, step := range []func() error{w.names, w.ips, w.listeners, w.keyType, w.users, w.acl} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	w.s.SetDefaults()
	if err := w.s.Validate(); err != nil {
		return nil, err
	}
	return w.s, nil
}

type wizard struct {
	p     Prompter
	h     Host
	s     *spec.Spec
	fresh bool
	// newUsers are the users added in this run (their rules are asked for).
	newUsers []string
}

func (w *wizard) names() error {
	def := w.s.Hostname
	if def == "" {
		def = detectHostname(w.h)
	}
	host, err := w.p.Input("Host name clients use to reach the broker",
		"It goes into the server certificate; clients that verify it (Android, iOS, Python, Go, browsers) refuse any name not in it. On a LAN with Avahi this is usually NAME.local.",
		def, func(v string) error { return pki.ValidateDNSName("host name", strings.TrimSpace(v)) })
	if err != nil {
		return err
	}
	w.s.Hostname = strings.ToLower(strings.TrimSpace(host))
	if w.fresh {
		// The CA to be created is named after the broker (an existing
		// broker.yaml keeps its ca_name, an existing CA its own name).
		w.s.TLS.CAName = pki.DefaultCAName(w.s.Hostname)
	}

	extraDef := strings.Join(w.s.Names, ", ")
	if w.fresh {
		extraDef = strings.Join(defaultExtraNames(w.s.Hostname), ", ")
	}
	extra, err := w.p.Input("Other names for the broker (comma separated, may be empty)",
		"Further DNS names in the certificate, e.g. localhost for programs on this machine, or a name in your router's DNS.",
		extraDef, func(v string) error {
			for _, n := range splitList(v) {
				if err := pki.ValidateDNSName("name", n); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	w.s.Names = nil
	for _, n := range splitList(extra) {
		n = strings.ToLower(n)
		if n != w.s.Hostname && !slices.Contains(w.s.Names, n) {
			w.s.Names = append(w.s.Names, n)
		}
	}
	return nil
}

func detectHostname(h Host) string {
	name, err := h.Hostname()
	if err != nil || name == "" {
		return "raspberrypi.local"
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !strings.Contains(name, ".") {
		// A bare name resolves on the LAN through mDNS as NAME.local.
		name += ".local"
	}
	if pki.ValidateDNSName("host name", name) != nil {
		return "raspberrypi.local"
	}
	return name
}

func defaultExtraNames(host string) []string {
	var out []string
	if short, _, _ := strings.Cut(host, "."); short != host && short != "localhost" {
		out = append(out, short)
	}
	if host != "localhost" {
		out = append(out, "localhost")
	}
	return out
}

func (w *wizard) ips() error {
	var opts []Option
	seen := map[string]bool{}
	add := func(ip, note string) {
		if !seen[ip] {
			seen[ip] = true
			opts = append(opts, Option{ip, note})
		}
	}
	addrs, _ := w.h.Addrs()
	for _, a := range addrs {
		if a.To4() != nil {
			add(a.String(), "an address of this machine now")
		} else {
			add(a.String(), "IPv6 address of this machine now; changes with the provider's prefix")
		}
	}
	add("127.0.0.1", "loopback: programs on this machine")
	add("::1", "IPv6 loopback")
	for _, ip := range w.s.IPs {
		add(ip, "in broker.yaml, not on this machine now")
	}
	defs := w.s.IPs
	if w.fresh {
		// IPv4 only: devices on a LAN connect by IPv4 or by name, and a
		// global IPv6 address goes stale when the provider renumbers.
		defs = nil
		for _, a := range addrs {
			if a.To4() != nil {
				defs = append(defs, a.String())
			}
		}
		defs = append(defs, "127.0.0.1")
	}
	chosen, err := w.p.MultiSelect("IP addresses clients may connect to (they go into the certificate)",
		"A device that connects by IP address checks it against the certificate. A DHCP address can change: give the Pi a fixed lease, or connect by name.",
		opts, defs, nil)
	if err != nil {
		return err
	}
	// An address this machine doesn't have yet (the lease the router will
	// give it, or an image built under --root, where none is detected).
	more, err := w.p.Input("Other IP addresses (comma separated, may be empty)",
		"For example the fixed address your router gives the Pi, when it is not listed above.",
		"", func(v string) error {
			for _, a := range splitList(v) {
				if net.ParseIP(a) == nil {
					return fmt.Errorf("%q is not an IP address", a)
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	for _, a := range splitList(more) {
		a = net.ParseIP(a).String()
		if !slices.Contains(chosen, a) {
			chosen = append(chosen, a)
		}
	}
	w.s.IPs = chosen
	return nil
}

// listenerNote is what a person must know before switching a listener on.
// (A function, not a map: a package-level map is built at every start of
// every mosqprov command.)
func listenerNote(t string) string {
	switch t {
	case spec.MQTTS:
		return "MQTT over TLS: encrypted and verified; for devices and apps (recommended)"
	case spec.WSS:
		return "WebSockets over TLS: encrypted; for browsers and web apps"
	case spec.MQTT:
		return "plain MQTT, on 127.0.0.1 only: for programs on this machine (passwords in clear)"
	case spec.WS:
		return "plain WebSockets on every interface (2.0.11 ignores the bind address): passwords in clear"
	}
	return ""
}

func (w *wizard) listeners() error {
	var opts []Option
	for _, t := range []string{spec.MQTTS, spec.WSS, spec.MQTT, spec.WS} {
		note := listenerNote(t)
		if l, ok := w.existing(t); ok && t == spec.MQTT && !conf.IsLoopback(l.Bind) {
			// Kept as it is, so the note must say what it is.
			note = "plain MQTT on " + bindText(l.Bind) + ": passwords cross the network in clear"
		}
		opts = append(opts, Option{t, fmt.Sprintf("port %d, %s", w.portOf(t), note)})
	}
	var defs []string
	for _, l := range w.s.Listeners {
		defs = append(defs, l.Type)
	}
	chosen, err := w.p.MultiSelect("Listeners", "Space toggles, Enter accepts.", opts, defs, func(v []string) error {
		if len(v) == 0 {
			return errors.New("choose at least one listener")
		}
		for _, t := range v {
			if t == spec.MQTT || t == spec.MQTTS {
				return nil
			}
		}
		return errors.New("mosquitto 2.0 can't start with only WebSocket listeners: add mqtts or mqtt")
	})
	if err != nil {
		return err
	}
	// Listeners kept keep their port, bind and mutual TLS; new ones get the defaults.
	var out []spec.Listener
	for _, t := range []string{spec.MQTT, spec.MQTTS, spec.WS, spec.WSS} {
		if !slices.Contains(chosen, t) {
			continue
		}
		found := false
		for _, l := range w.s.Listeners {
			if l.Type == t {
				out = append(out, l)
				found = true
			}
		}
		if !found {
			l := spec.Listener{Type: t, Port: spec.DefaultPort(t)}
			l.Bind = conf.Type(t).DefaultBind()
			out = append(out, l)
		}
	}
	w.s.Listeners = out
	return nil
}

func (w *wizard) portOf(t string) int {
	if l, ok := w.existing(t); ok && l.Port != 0 {
		return l.Port
	}
	return spec.DefaultPort(t)
}

// existing is the starting spec's listener of type t.
func (w *wizard) existing(t string) (spec.Listener, bool) {
	for _, l := range w.s.Listeners {
		if l.Type == t {
			return l, true
		}
	}
	return spec.Listener{}, false
}

func bindText(bind string) string {
	if ip := net.ParseIP(bind); bind == "" || ip != nil && ip.IsUnspecified() {
		return "every interface"
	}
	return bind
}

// keyNote is what a key type means for the clients (a function, as listenerNote).
func keyNote(k pki.KeyType) string {
	switch k {
	case pki.RSA2048:
		return "what every ESP32, ESP8266 and Android TLS stack handles (default)"
	case pki.RSA3072:
		return "stronger; slower handshakes on microcontrollers"
	case pki.RSA4096:
		return "strongest RSA; slow handshakes on microcontrollers"
	case pki.ECDSAP256:
		return "small and fast; needs a client with ECDSA (ESP32 mbedTLS: yes; ESP8266 BearSSL: check)"
	case pki.ECDSAP384:
		return "ECDSA, stronger curve"
	}
	return ""
}

func (w *wizard) keyType() error {
	var opts []Option
	for _, k := range pki.KeyTypes {
		opts = append(opts, Option{string(k), keyNote(k)})
	}
	def := w.s.TLS.KeyType
	if def == "" {
		def = string(pki.RSA2048)
	}
	help := "Used for the CA and server keys when they are made; an existing CA is kept."
	kt, err := w.p.Select("Key type", help, opts, def)
	if err != nil {
		return err
	}
	w.s.TLS.KeyType = kt
	return nil
}

func (w *wizard) users() error {
	if len(w.s.Users) > 0 {
		var names []string
		for _, u := range w.s.Users {
			names = append(names, u.Name)
		}
		w.p.Say("Users kept from broker.yaml: %s", strings.Join(names, ", "))
	}
	for {
		q := "Add a user?"
		if len(w.s.Users) > 0 {
			q = "Add another user?"
		}
		more, err := w.p.Confirm(q, "Each device or program should log in as its own user.", len(w.s.Users) == 0)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		name, err := w.p.Input("User name", "What the device or program logs in with, e.g. blinds or android-app.", "", func(v string) error {
			if err := passwd.ValidateName(v); err != nil {
				return err
			}
			for _, u := range w.s.Users {
				if u.Name == v {
					return fmt.Errorf("%q is already a user", v)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		hash, err := w.password(name)
		if err != nil {
			return err
		}
		// Only the hash goes into broker.yaml: the spec may end up in git.
		w.s.Users = append(w.s.Users, spec.User{Name: name, Hash: hash})
		w.newUsers = append(w.newUsers, name)
	}
}

// password asks twice until both entries agree and the password is one the
// broker takes, and returns its Mosquitto hash.
func (w *wizard) password(user string) (string, error) {
	for {
		first, err := w.p.Password("Password for "+user, "Not shown while you type; asked twice. Only a hash of it is stored.")
		if err != nil {
			return "", err
		}
		if first == "" {
			w.p.Say("Nothing was typed: %s needs a password to log in (it is not shown while you type).", user)
			continue
		}
		if err := passwd.ValidatePassword(first); err != nil {
			w.p.Say("%s", errs.Problem(err))
			continue
		}
		second, err := w.p.Password("Password for "+user+" (again)", "")
		if err != nil {
			return "", err
		}
		if first != second {
			w.p.Say("The two entries differ; try again.")
			continue
		}
		h, err := passwd.New(first, passwd.PBKDF2, 0)
		if err != nil {
			return "", err
		}
		return h.String(), nil
	}
}

func (w *wizard) acl() error {
	if len(w.s.Users) == 0 {
		return nil
	}
	on, err := w.p.Confirm("Limit each user to its own topics (ACL rules)?",
		"Without rules every user may read and write every topic. With rules, a user may use only the topics listed for it.",
		len(w.s.ACL) > 0)
	if err != nil {
		return err
	}
	if !on {
		w.s.ACL = nil
		return nil
	}
	has := map[string]bool{}
	for _, r := range w.s.ACL {
		has[r.User] = true
	}
	for _, u := range w.s.Users {
		if has[u.Name] {
			continue
		}
		topics, err := w.p.Input(fmt.Sprintf("Topics %s may read and write (comma separated; # matches everything below)", u.Name),
			"For example home/blinds/#. Leave empty to give the user no topics.",
			defaultTopic(u.Name), func(v string) error {
				for _, t := range splitTopics(v) {
					if err := (acl.Rule{Kind: acl.KindUser, User: u.Name, Access: acl.AccessReadWrite, Topic: t}).Validate(); err != nil {
						return errors.New(errs.Problem(err))
					}
				}
				return nil
			})
		if err != nil {
			return err
		}
		if list := splitTopics(topics); len(list) > 0 {
			w.s.ACL = append(w.s.ACL, spec.ACLRule{User: u.Name, ReadWrite: list})
		}
	}
	return nil
}

func defaultTopic(user string) string {
	if strings.ContainsAny(user, "#+/") {
		return ""
	}
	return user + "/#"
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// splitTopics splits on commas only: a topic level may hold a blank.
func splitTopics(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
