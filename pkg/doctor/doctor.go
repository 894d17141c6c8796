// Package doctor checks a mosquitto installation from the inside: owners and
// modes, the password file, listeners, certificates, drift since the last
// apply, the package and the service. Each finding says what is wrong, why it
// matters and the command that fixes it. It reads; it never writes.
package doctor

import (
	"context"
	"fmt"
	"sort"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// Severity of a finding: errors make doctor exit 1.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding IDs, stable for scripts and the README.
const (
	IDCAKeyReadable    = "ca-key-readable"
	IDSecretUnreadable = "secret-unreadable"
	IDSecretExposed    = "secret-exposed"
	IDSecretOwner      = "secret-owner"
	IDPasswdLine       = "passwd-line"
	IDPlainListener    = "plain-listener"
	IDWebSocketBind    = "websocket-bind"
	IDListenerClash    = "listener-clash"
	IDCertMissing      = "cert-missing"
	IDCertNoSAN        = "cert-no-san"
	IDCertName         = "cert-name"
	IDCertAddress      = "cert-address"
	IDCertExpired      = "cert-expired"
	IDCertExpiring     = "cert-expiring"
	IDCertUntrusted    = "cert-untrusted"
	IDDrift            = "drift"
	IDPackageMissing   = "package-missing"
	IDServiceInactive  = "service-inactive"
	IDServiceDisabled  = "service-disabled"
	IDServiceUnchecked = "service-unchecked"
	IDSpecMissing      = "spec-missing"
	IDNoState          = "no-state"
	IDSymlink          = "managed-symlink"
)

// Finding is one problem.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about: a file (with :LINE), a listener.
	Subject string `json:"subject,omitempty"`
	Problem string `json:"problem"`
	Why     string `json:"why"`
	Fix     string `json:"fix"`
	// Detail is further evidence (journal lines), one entry per line.
	Detail []string `json:"detail,omitempty"`
}

// Fact is something doctor learned that is not a problem (versions, states).
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Report is everything doctor found.
type Report struct {
	Facts    []Fact    `json:"facts"`
	Findings []Finding `json:"findings"`
}

// Count is the number of findings of severity s.
func (r Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Service is what doctor asks systemd (a *systemd.Service).
type Service interface {
	Manageable() (bool, string)
	Status(ctx context.Context) (systemd.Status, error)
}

// Checker holds what doctor looks at.
type Checker struct {
	Sys     system.System
	Service Service
	// Spec is broker.yaml, nil when there is none (checks then use the
	// files and defaults alone).
	Spec     *spec.Spec
	SpecPath string
	// Host gives the machine's current addresses (a Pi that got a new DHCP
	// address); tests give their own.
	Host certs.Host
	// MainConf is the broker's main configuration file (default layout.MosquittoConf).
	MainConf string
	// BridgeStates asks the running broker for each bridge's state
	// ("connected", "not connected", "unknown"; by bridge name), as the
	// status identity reads it from $SYS; nil when there is no such login
	// (status_reader off): bridges are then judged from the log alone.
	BridgeStates func(ctx context.Context, bridges []bridge.Bridge) (map[string]string, error)

	r      Report
	broker *system.Account
	cfg    *conf.Broker
	ver    string
}

// Run does every check.
func (c *Checker) Run(ctx context.Context) Report {
	c.r = Report{Facts: []Fact{}, Findings: []Finding{}}
	if c.MainConf == "" {
		c.MainConf = layout.MosquittoConf
	}
	if acct, err := c.Sys.LookupUser(layout.BrokerUser); err == nil {
		c.broker = &acct
	}
	if b, err := conf.ReadBroker(c.Sys, c.MainConf); err == nil {
		c.cfg = b
	}
	c.checkPackage(ctx)
	c.checkSpec()
	c.checkFiles()
	c.checkConfReadable()
	c.checkPasswordFile()
	c.checkListeners()
	c.checkCertificate()
	c.checkCRL()
	c.checkDrift()
	c.checkBridges(ctx)
	c.checkDatabase()
	c.checkService(ctx)
	sort.SliceStable(c.r.Findings, func(i, j int) bool {
		return rank(c.r.Findings[i].Severity) < rank(c.r.Findings[j].Severity)
	})
	return c.r
}

func rank(s Severity) int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

func (c *Checker) add(f Finding) { c.r.Findings = append(c.r.Findings, f) }

func (c *Checker) fact(name, format string, args ...any) {
	c.r.Facts = append(c.r.Facts, Fact{Name: name, Value: fmt.Sprintf(format, args...)})
}

// setting is the last value of a global setting in the broker's files.
func (c *Checker) setting(name string) (conf.Setting, bool) {
	if c.cfg == nil {
		return conf.Setting{}, false
	}
	var found conf.Setting
	ok := false
	for _, s := range c.cfg.Settings {
		if s.Name == name {
			found, ok = s, true
		}
	}
	return found, ok
}

func (c *Checker) checkSpec() {
	if c.Spec == nil {
		c.add(Finding{ID: IDSpecMissing, Severity: Info, Subject: c.SpecPath,
			Problem: "no broker.yaml: names and listeners are checked against the files alone",
			Why:     "without the spec doctor can't tell which names clients use or what apply last wanted",
			Fix:     "sudo mosqprov setup   (or write " + layout.Spec + " and run `sudo mosqprov apply`)"})
		return
	}
	c.fact("spec", "%s", c.SpecPath)
}
