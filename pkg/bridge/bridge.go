// Package bridge is the broker's bridges to other brokers (mosquitto.conf(5),
// CONFIGURING BRIDGES): a model of one bridge, its validation (every value
// lands in a configuration file, so none may add a line or a directive),
// rendering from templates/bridge.conf.tmpl into a conf.d file of its own,
// reading that file back, and a converge function that writes it with the
// bridges' TLS files.
//
// The file holds the remote passwords, so it is root's and readable by the
// broker's group only (0640 root:mosquitto): mosquitto reads its whole
// configuration again as its own user on SIGHUP (checked with 2.0.11: a
// 0600 root file makes every reload fail with "Unable to open config file").
package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/pki"
)

// Target paths of what this package writes.
const (
	// File is the bridges' configuration, beside mosqprov's own drop-in.
	File = "/etc/mosquitto/conf.d/mosqprov-bridges.conf"
	// Dir holds each bridge's TLS files: NAME-ca.crt, NAME.crt, NAME.key.
	Dir = "/etc/mosquitto/bridges"
	// SystemCAPath is Debian's CA store, hashed for OpenSSL's capath lookup
	// (ca-certificates keeps the hash links).
	SystemCAPath = "/etc/ssl/certs"
)

// Direction is which way a topic's messages go.
type Direction string

const (
	In   Direction = "in"   // from the remote broker to this one
	Out  Direction = "out"  // from this broker to the remote one
	Both Direction = "both" // both ways
)

// Directions lists the directions.
var Directions = []Direction{In, Out, Both}

// Protocol versions, as broker.yaml and the flags write them.
const (
	MQTT311 = "3.1.1"
	MQTT5   = "5"
)

// Start types (mosquitto's start_type).
var StartTypes = []string{"automatic", "lazy", "once"}

// TLS versions of a bridge (bridge_tls_version); 1.1 is deprecated (RFC 8996).
var TLSVersions = []string{"tlsv1.2", "tlsv1.3"}

// Where a bridge comes from: broker.yaml (apply owns it, and removes it
// when the spec no longer lists it) or `mosqprov bridge add` (apply keeps it).
const (
	SourceSpec = "broker.yaml"
	SourceCLI  = "mosqprov bridge add"
)

// Topic is one topic rule of a bridge.
type Topic struct {
	// Pattern is an MQTT topic filter ("" only with both prefixes, to map
	// one local topic onto one remote topic).
	Pattern   string    `json:"pattern"`
	Direction Direction `json:"direction"`
	QoS       int       `json:"qos"`
	// LocalPrefix and RemotePrefix are put in front of the pattern on each side.
	LocalPrefix  string `json:"local_prefix,omitempty"`
	RemotePrefix string `json:"remote_prefix,omitempty"`
}

// Bridge is one connection to another broker.
type Bridge struct {
	Name string `json:"name"`
	// Addresses are host:port, tried in this order (the first is the main
	// one; the broker goes back to it when it can).
	Addresses []string `json:"addresses"`
	Topics    []Topic  `json:"topics"`

	// CA is the PEM certificates that verify the remote broker, installed as
	// Dir/NAME-ca.crt; SystemCA uses the system's store instead. With
	// neither, the bridge speaks plain TCP.
	CA       []byte `json:"-"`
	SystemCA bool   `json:"system_ca,omitempty"`
	// Cert and Key are the bridge's client certificate and key (AWS IoT, or
	// a remote with mutual TLS), installed as Dir/NAME.crt and NAME.key.
	Cert []byte `json:"-"`
	Key  []byte `json:"-"`
	// TLSVersion is bridge_tls_version ("" leaves the broker's default, tlsv1.2).
	TLSVersion string `json:"tls_version,omitempty"`
	// InsecurePlainTCP is the opt-in a plain TCP bridge to another machine needs.
	InsecurePlainTCP bool `json:"insecure_plain_tcp,omitempty"`

	Username string `json:"username,omitempty"`
	// Password is the remote password: never printed, never in JSON.
	Password string `json:"-"`
	// Protocol is 3.1.1 (default) or 5.
	Protocol string `json:"protocol,omitempty"`
	// ClientID is the remote client id (ClientIDFor gives the default).
	ClientID       string `json:"client_id"`
	CleanSession   *bool  `json:"cleansession,omitempty"`
	KeepAlive      int    `json:"keepalive,omitempty"`
	Notifications  *bool  `json:"notifications,omitempty"`
	TryPrivate     *bool  `json:"try_private,omitempty"`
	OutgoingRetain *bool  `json:"bridge_outgoing_retain,omitempty"`
	StartType      string `json:"start_type,omitempty"`

	// Source says who owns the bridge: SourceSpec or SourceCLI.
	Source string `json:"source"`

	// The installed TLS files, as Parse read them.
	caFile, certFile, keyFile string
}

// TLS reports whether the bridge connects over TLS.
func (b Bridge) TLS() bool { return len(b.CA) > 0 || b.SystemCA }

// Files are the target paths of the bridge's TLS files (empty when it has none).
func (b Bridge) Files() (ca, cert, key string) {
	if len(b.CA) > 0 {
		ca = Dir + "/" + b.Name + "-ca.crt"
	}
	if len(b.Cert) > 0 {
		cert = Dir + "/" + b.Name + ".crt"
		key = Dir + "/" + b.Name + ".key"
	}
	return
}

// CAPath is bridge_capath: the system store when SystemCA.
func (b Bridge) CAPath() string {
	if b.SystemCA && len(b.CA) == 0 {
		return SystemCAPath
	}
	return ""
}

// StateTopic is where the broker publishes the bridge's state (1 connected,
// 0 not): $SYS/broker/connection/<remote client id>/state (checked with
// 2.0.11: the client id, not the connection name).
func (b Bridge) StateTopic() string { return "$SYS/broker/connection/" + b.ClientID + "/state" }

// NotificationsOn reports whether the broker publishes the bridge's state.
func (b Bridge) NotificationsOn() bool { return b.Notifications == nil || *b.Notifications }

// ProtocolValue is bridge_protocol_version's value.
func (b Bridge) ProtocolValue() string {
	if b.Protocol == MQTT5 {
		return "mqttv50"
	}
	return "mqttv311"
}

// Loopback reports whether every address is on this machine.
func (b Bridge) Loopback() bool {
	for _, a := range b.Addresses {
		host, _, err := SplitAddress(a)
		if err != nil || !conf.IsLoopback(host) {
			return false
		}
	}
	return true
}

// Warnings are what a valid bridge still deserves a word about.
func (b Bridge) Warnings() []string {
	if !b.TLS() && !b.Loopback() {
		return []string{fmt.Sprintf("bridge %s connects over plain TCP to another machine: its password and messages cross the network in clear", b.Name)}
	}
	return nil
}

// ClientIDFor is the default remote client id: the bridge's name, the
// host's name and a short digest of its machine id, so two Pis that both
// kept the hostname "raspberrypi" still never take each other's session on
// one cloud broker (a remote drops the older connection of a client id).
func ClientIDFor(name, hostname string, machineID []byte) string {
	host := strings.Map(func(r rune) rune {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-') {
			return r
		}
		return -1
	}, strings.SplitN(hostname, ".", 2)[0])
	id := name
	if host != "" {
		id += "." + host
	}
	if m := strings.TrimSpace(string(machineID)); m != "" {
		sum := sha256.Sum256([]byte("mosqprov bridge client id\x00" + m))
		id += "." + hex.EncodeToString(sum[:4])
	}
	return id
}

// Caps of one bridge (docs/reference.md, "Limits"; broker.yaml's decoder
// and its JSON Schema take the same figures): a failover list of 16
// brokers, 256 forwarded topic patterns.
const (
	MaxAddresses = 16
	MaxTopics    = 256
)

// Validate checks every value. The error names the field, relative to the
// bridge ("addresses[1]", "topics[0].pattern"): broker.yaml puts it under
// bridges[N], the bridge command under the bridge's name.
func (b Bridge) Validate() error {
	if err := ValidateName(b.Name); err != nil {
		return err
	}
	if len(b.Addresses) == 0 {
		return errs.Invalid("addresses", "at least one remote address (host:port) is needed")
	}
	if len(b.Addresses) > MaxAddresses {
		return errs.Invalid("addresses", "%d addresses; at most %d", len(b.Addresses), MaxAddresses)
	}
	for i, a := range b.Addresses {
		if err := ValidateAddress(fmt.Sprintf("addresses[%d]", i), a); err != nil {
			return err
		}
	}
	if len(b.Topics) == 0 {
		return errs.Invalid("topics", "at least one topic is needed: a bridge without topics forwards nothing")
	}
	if len(b.Topics) > MaxTopics {
		return errs.Invalid("topics", "%d topics; at most %d", len(b.Topics), MaxTopics)
	}
	for i, t := range b.Topics {
		if err := t.Validate(fmt.Sprintf("topics[%d]", i)); err != nil {
			return err
		}
	}
	if !b.TLS() {
		if len(b.Cert) > 0 {
			return errs.Invalid("tls", "a client certificate needs TLS: give tls.ca_file or tls.system_ca")
		}
		if b.TLSVersion != "" {
			return errs.Invalid("tls.version", "needs TLS: give tls.ca_file or tls.system_ca")
		}
		if !b.Loopback() && !b.InsecurePlainTCP {
			return errs.Invalid("tls", "bridge %s would reach another machine over plain TCP: give a CA file or the system CA store for TLS, or opt in to sending its password and messages in clear (insecure_plain_tcp, --insecure-plain-tcp)", b.Name)
		}
	}
	if len(b.CA) > 0 && b.SystemCA {
		return errs.Invalid("tls", "give one of ca_file or system_ca")
	}
	if b.TLS() && b.InsecurePlainTCP {
		return errs.Invalid("insecure_plain_tcp", "the bridge uses TLS; leave insecure_plain_tcp out")
	}
	if len(b.CA) > 0 {
		if _, err := pki.ParseCertificates(b.CA); err != nil {
			return errs.Invalid("tls.ca_file", "not PEM certificates: %v", err)
		}
	}
	if (len(b.Cert) > 0) != (len(b.Key) > 0) {
		return errs.Invalid("tls", "a client certificate needs both cert_file and key_file")
	}
	if len(b.Cert) > 0 {
		cert, err := pki.ParseCertificate(b.Cert)
		if err != nil {
			return errs.Invalid("tls.cert_file", "not a PEM certificate: %v", err)
		}
		key, err := pki.ParsePrivateKey(b.Key)
		if err != nil {
			return errs.Invalid("tls.key_file", "%v", err)
		}
		if !pki.KeyMatches(cert, key) {
			return errs.Invalid("tls.key_file", "the key does not match the certificate of tls.cert_file")
		}
	}
	if b.TLSVersion != "" && !contains(TLSVersions, b.TLSVersion) {
		return errs.Invalid("tls.version", "%q is not one of %s", printable(b.TLSVersion), strings.Join(TLSVersions, ", "))
	}
	if b.Username != "" {
		if err := validateWord("username", b.Username, 1024); err != nil {
			return err
		}
	}
	if b.Password != "" {
		if b.Username == "" {
			return errs.Invalid("password", "a remote password needs a username (mosquitto ignores it otherwise)")
		}
		if err := ValidatePassword(b.Password); err != nil {
			return err
		}
	}
	if b.Protocol != "" && b.Protocol != MQTT311 && b.Protocol != MQTT5 {
		return errs.Invalid("protocol", "%q is not 3.1.1 or 5", printable(b.Protocol))
	}
	if err := validateWord("client_id", b.ClientID, 256); err != nil {
		return err
	}
	if b.KeepAlive != 0 && (b.KeepAlive < 5 || b.KeepAlive > 65535) {
		return errs.Invalid("keepalive", "%d is not between 5 and 65535 seconds (mosquitto's minimum is 5)", b.KeepAlive)
	}
	if b.StartType != "" && !contains(StartTypes, b.StartType) {
		return errs.Invalid("start_type", "%q is not one of %s", printable(b.StartType), strings.Join(StartTypes, ", "))
	}
	if b.Source != "" && b.Source != SourceSpec && b.Source != SourceCLI {
		return errs.Invalid("source", "%q is not %q or %q", printable(b.Source), SourceSpec, SourceCLI)
	}
	return nil
}

// ValidateName checks a bridge name: it is the connection's name, part of
// file names and of the default client id, so letters, digits, '-', '_'
// and '.', starting with a letter or digit, at most 64 characters.
func ValidateName(name string) error {
	if name == "" {
		return errs.Invalid("name", "empty")
	}
	if len(name) > 64 {
		return errs.Invalid("name", "%q is longer than 64 characters", printable(name))
	}
	for i, r := range name {
		ok := r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)) || i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return errs.Invalid("name", "%q: use letters, digits, '-', '_' and '.', starting with a letter or digit", printable(name))
		}
	}
	return nil
}

// SplitAddress splits host:port ("[::1]:8883" for IPv6).
func SplitAddress(a string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not between 1 and 65535", p)
	}
	return h, n, nil
}

// ValidateAddress checks one remote address: a DNS name or an IP address,
// and a port (required: a bridge to the wrong port fails quietly).
func ValidateAddress(field, a string) error {
	if len(a) > 300 {
		return errs.Invalid(field, "longer than 300 characters")
	}
	host, _, err := SplitAddress(a)
	if err != nil {
		return errs.Invalid(field, "%q is not host:port ([v6 address]:port for IPv6): %v", printable(a), err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || ip.IsUnspecified() {
			return errs.Invalid(field, "%q is not an address to connect to", printable(host))
		}
		return nil
	}
	if err := pki.ValidateDNSName(field, host); err != nil {
		return err
	}
	return nil
}

// Address is a in mosquitto's form: the broker splits an address at its
// last ':' and takes no brackets, so [::1]:8883 is written ::1:8883.
func Address(a string) string {
	host, port, err := SplitAddress(a)
	if err != nil {
		return a
	}
	return host + ":" + strconv.Itoa(port)
}

// Validate checks a topic rule. The pattern follows the ACL's MQTT rules;
// the prefixes are topic names without wildcards (the broker refuses them)
// and neither may contain a blank, which would split the topic line.
func (t Topic) Validate(field string) error {
	switch t.Direction {
	case In, Out, Both:
	default:
		return errs.Invalid(field+".direction", "%q is not in, out or both", printable(string(t.Direction)))
	}
	if t.QoS < 0 || t.QoS > 2 {
		return errs.Invalid(field+".qos", "%d is not 0, 1 or 2", t.QoS)
	}
	if t.Pattern == "" {
		if t.LocalPrefix == "" || t.RemotePrefix == "" {
			return errs.Invalid(field+".pattern", "empty; an empty pattern maps local_prefix onto remote_prefix and needs both")
		}
	} else {
		if err := acl.ValidateTopic(t.Pattern); err != nil {
			return errs.Invalid(field+".pattern", "%s", errs.Problem(err))
		}
		if strings.ContainsFunc(t.Pattern, unicode.IsSpace) {
			return errs.Invalid(field+".pattern", "%q contains a blank; a bridge topic must be one word on its configuration line", printable(t.Pattern))
		}
	}
	for _, p := range []struct{ name, v string }{{"local_prefix", t.LocalPrefix}, {"remote_prefix", t.RemotePrefix}} {
		if p.v == "" {
			continue
		}
		f := field + "." + p.name
		if err := acl.ValidateTopic(p.v); err != nil {
			return errs.Invalid(f, "%s", errs.Problem(err))
		}
		if strings.ContainsAny(p.v, "+#") {
			return errs.Invalid(f, "%q contains a wildcard; a prefix is a plain topic (the broker refuses wildcards there)", printable(p.v))
		}
		if strings.ContainsFunc(p.v, unicode.IsSpace) || p.v == `""` {
			return errs.Invalid(f, "%q contains a blank or is a quoted empty string; leave it out for no prefix", printable(p.v))
		}
	}
	if t.Pattern == `""` {
		return errs.Invalid(field+".pattern", `write an empty pattern as "" in YAML (no quotes inside)`)
	}
	return nil
}

// ValidatePassword checks a remote password: the broker takes the rest of
// the remote_password line, so no control character or line break, and no
// blank at either end (the broker would drop it).
func ValidatePassword(pw string) error {
	switch {
	case pw == "":
		return errs.Invalid("password", "empty")
	case len(pw) > 1024:
		return errs.Invalid("password", "longer than 1024 bytes")
	case !utf8.ValidString(pw):
		return errs.Invalid("password", "not valid UTF-8")
	case strings.IndexFunc(pw, unicode.IsControl) >= 0 || strings.ContainsAny(pw, "\u2028\u2029\u0085"):
		return errs.Invalid("password", "contains a control character or a line break")
	case unicode.IsSpace(first(pw)) || unicode.IsSpace(last(pw)):
		return errs.Invalid("password", "starts or ends with a blank, which the broker would drop")
	}
	return nil
}

// validateWord checks a value that is one word on a configuration line.
func validateWord(field, v string, max int) error {
	switch {
	case v == "":
		return errs.Invalid(field, "empty")
	case len(v) > max:
		return errs.Invalid(field, "longer than %d characters", max)
	case !utf8.ValidString(v):
		return errs.Invalid(field, "not valid UTF-8")
	case strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0:
		return errs.Invalid(field, "%q contains a blank or a control character", printable(v))
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func first(s string) rune { r, _ := utf8.DecodeRuneInString(s); return r }
func last(s string) rune  { r, _ := utf8.DecodeLastRuneInString(s); return r }

// printable quotes s safely for a one-line error message.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
