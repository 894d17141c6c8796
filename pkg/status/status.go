// Package status is a live look at the running broker: what it publishes
// under $SYS, read by mosqprov's own $SYS-only identity (docs/security.md),
// with the certificates' days left and the last warnings of its log.
package status

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mosqprov/mosqprov/pkg/acl"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// User is the identity `mosqprov status` reads $SYS as. Its ACL lets it
// read $SYS/# and nothing else (Rules); its password is random and lives
// only in SecretFile, root's 0600.
const User = "mosqprov-status"

// SecretFile holds the identity's password: root-only, beside the CA key's
// folder, never in the broker's folder.
const SecretFile = "/etc/mosqprov/status.secret"

// Rules confine the identity. Mosquitto 2.0 checks a user's `deny` lines
// before anything else and a rule for "#" never matches a topic starting
// with '$', so: every ordinary topic is denied (publish and subscribe,
// whatever pattern rules give every user), $SYS/# may be read, and nothing
// lets it publish to $SYS (TestIdentityCanOnlyReadSys proves each with the
// real broker).
func Rules() []acl.Rule {
	return []acl.Rule{
		{Kind: acl.KindUser, User: User, Access: acl.AccessDeny, Topic: "#"},
		{Kind: acl.KindUser, User: User, Access: acl.AccessRead, Topic: "$SYS/#"},
	}
}

// EnsureSecret returns the identity's password, creating it (32 random
// bytes, hex) in SecretFile (root:root 0600) the first time.
func EnsureSecret(sys system.System, random func([]byte) error) (string, system.Result, error) {
	var res system.Result
	data, err := sys.ReadFile(SecretFile)
	if err == nil {
		pw := strings.TrimSpace(string(data))
		if len(pw) == 64 {
			res.Add(system.NewChange("status identity password", SecretFile, system.Noop, ""))
			return pw, res, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", res, fmt.Errorf("read %s: %w", SecretFile, err)
	}
	if random == nil {
		random = func(b []byte) error { _, err := rand.Read(b); return err }
	}
	b := make([]byte, 32)
	if err := random(b); err != nil {
		return "", res, err
	}
	pw := hex.EncodeToString(b)
	if _, err := sys.EnsureDir(layout.StateDir, system.Attr{Mode: 0o755, User: "root", Group: "root"}); err != nil {
		return "", res, err
	}
	action, err := sys.WriteFile(SecretFile, []byte(pw+"\n"), layout.RootOnly)
	if err != nil {
		return "", res, fmt.Errorf("write %s: %w", SecretFile, err)
	}
	res.Add(system.NewChange("status identity password", SecretFile, action, "random, root only"))
	return pw, res, nil
}

// RemoveSecret removes SecretFile (status_reader turned off); nothing
// when there is none.
func RemoveSecret(sys system.System) (system.Result, error) {
	var res system.Result
	action, err := sys.Remove(SecretFile)
	if err != nil {
		return res, err
	}
	if action.Changed() {
		res.Add(system.NewChange("status identity password", SecretFile, action, "status_reader is off"))
	}
	return res, nil
}

// ReadSecret is the identity's password, or an error saying how to create it.
func ReadSecret(sys system.System) (string, error) {
	data, err := sys.ReadFile(SecretFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no status identity (%s): set status_reader: true in broker.yaml and run `sudo mosqprov apply`", SecretFile)
	}
	if err != nil {
		return "", fmt.Errorf("read %s (run as root): %w", SecretFile, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// Sys is what the broker publishes under $SYS, topic -> payload.
type Sys map[string]string

// Read subscribes to $SYS/# and collects what arrives for wait (the
// broker sends its retained $SYS values at once, and the rest every
// sys_interval).
func Read(ctx context.Context, url string, opts *mqtt.ClientOptions, wait time.Duration) (Sys, error) {
	var mu sync.Mutex
	got := Sys{}
	if opts == nil {
		opts = mqtt.NewClientOptions()
	}
	opts.AddBroker(url)
	opts.SetClientID(fmt.Sprintf("mosqprov-status-%d", time.Now().UnixNano()))
	opts.SetCleanSession(true)
	opts.SetAutoReconnect(false)
	opts.SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(6*time.Second) || t.Error() != nil {
		err := t.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		return nil, fmt.Errorf("connect to %s as %s: %w", url, opts.Username, err)
	}
	defer c.Disconnect(100)
	t := c.Subscribe("$SYS/#", 0, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		got[m.Topic()] = string(m.Payload())
		mu.Unlock()
	})
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("subscribe to $SYS/#: %v", t.Error())
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(wait):
	}
	mu.Lock()
	defer mu.Unlock()
	out := Sys{}
	for k, v := range got {
		out[k] = v
	}
	return out, nil
}

// Bridge is one bridge's connection state.
type Bridge struct {
	Name      string `json:"name"`
	Connected bool   `json:"connected"`
}

// Cert is a certificate's days left.
type Cert struct {
	Path     string `json:"path"`
	DaysLeft int    `json:"days_left"`
	Present  bool   `json:"present"`
}

// Report is one look at the broker.
type Report struct {
	Version          string   `json:"version"`
	UptimeSeconds    int64    `json:"uptime_seconds"`
	ClientsConnected int64    `json:"clients_connected"`
	MessagesInPerSec float64  `json:"messages_in_per_second"`
	MessagesOutPerS  float64  `json:"messages_out_per_second"`
	BytesInPerSec    float64  `json:"bytes_in_per_second"`
	BytesOutPerSec   float64  `json:"bytes_out_per_second"`
	Retained         int64    `json:"retained_messages"`
	Subscriptions    int64    `json:"subscriptions"`
	Bridges          []Bridge `json:"bridges"`
	ServerCert       *Cert    `json:"server_certificate,omitempty"`
	CACert           *Cert    `json:"ca_certificate,omitempty"`
	Warnings         []string `json:"log_warnings"`
}

// FromSys fills the broker's figures of r from $SYS. Rates are the
// broker's own one-minute averages ($SYS/broker/load/.../1min, per minute)
// divided by 60.
func (r *Report) FromSys(s Sys) {
	r.Version = strings.TrimPrefix(s["$SYS/broker/version"], "mosquitto version ")
	r.UptimeSeconds = leadingInt(s["$SYS/broker/uptime"])
	r.ClientsConnected = leadingInt(s["$SYS/broker/clients/connected"])
	r.Retained = leadingInt(s["$SYS/broker/retained messages/count"])
	r.Subscriptions = leadingInt(s["$SYS/broker/subscriptions/count"])
	perSec := func(topic string) float64 {
		v, _ := strconv.ParseFloat(strings.TrimSpace(s[topic]), 64)
		return v / 60
	}
	r.MessagesInPerSec = perSec("$SYS/broker/load/messages/received/1min")
	r.MessagesOutPerS = perSec("$SYS/broker/load/messages/sent/1min")
	r.BytesInPerSec = perSec("$SYS/broker/load/bytes/received/1min")
	r.BytesOutPerSec = perSec("$SYS/broker/load/bytes/sent/1min")
	r.Bridges = []Bridge{}
	for topic, v := range s {
		name, ok := strings.CutPrefix(topic, "$SYS/broker/connection/")
		if !ok || !strings.HasSuffix(name, "/state") {
			continue
		}
		r.Bridges = append(r.Bridges, Bridge{Name: strings.TrimSuffix(name, "/state"), Connected: strings.TrimSpace(v) == "1"})
	}
	sort.Slice(r.Bridges, func(i, j int) bool { return r.Bridges[i].Name < r.Bridges[j].Name })
}

func leadingInt(s string) int64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(f[0], 10, 64)
	return v
}

// Warnings are the log lines that say Warning or Error, the last n.
func Warnings(lines []string, n int) []string {
	out := []string{}
	for _, l := range lines {
		if strings.Contains(l, "Warning") || strings.Contains(l, "Error") {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
