package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/bridge"
)

// IDBridgeDown is a bridge whose last attempt to connect failed.
const (
	IDBridgeDown    = "bridge-down"
	IDBridgeExposed = "bridge-exposed"
)

// maxLogRead caps how much of each log file doctor reads for bridges.
const maxLogRead = 512 << 10

// checkBridges explains, from the broker's log, each bridge whose last
// attempt to connect failed: name resolution, refused connection, TLS chain
// or name, refused credentials (bridge.Diagnose). It also checks that the
// bridges file, which holds remote passwords, is not readable by others.
func (c *Checker) checkBridges(ctx context.Context) {
	bridges, err := bridge.Read(c.Sys)
	if err != nil || len(bridges) == 0 {
		return
	}
	c.fact("bridges", "%d (%s)", len(bridges), names(bridges))
	if fi, err := c.Sys.Stat(bridge.File); err == nil && fi.Mode&0o007 != 0 {
		c.add(Finding{ID: IDBridgeExposed, Severity: Error, Subject: bridge.File,
			Problem: fmt.Sprintf("the bridges file is readable by every user (mode %04o)", fi.Mode),
			Why:     "it holds the bridges' remote passwords",
			Fix:     "sudo chmod 0640 " + bridge.File + " && sudo chown root:mosquitto " + bridge.File})
	}
	explained := map[string]bool{}
	defer func() { c.checkBridgeStates(ctx, bridges, explained) }()
	if c.cfg == nil {
		return
	}
	var log []string
	for _, p := range c.cfg.LogFiles {
		data, err := c.Sys.ReadFile(p)
		if err != nil {
			continue
		}
		if len(data) > maxLogRead {
			data = data[len(data)-maxLogRead:]
		}
		log = append(log, strings.Split(strings.TrimRight(string(data), "\n"), "\n")...)
	}
	for _, d := range bridge.Diagnose(bridges, log, c.ver) {
		sev := Error
		if d.Cause == bridge.CauseRefused || d.Cause == bridge.CauseOther {
			sev = Warning // the remote may be down for a moment
		}
		lines := d.Lines
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		explained[d.Bridge] = true
		c.add(Finding{ID: IDBridgeDown, Severity: sev, Subject: "bridge " + d.Bridge + " (" + d.Address + ")",
			Problem: "the bridge does not connect: " + d.Cause.Explain(),
			Why:     "its topics are not forwarded; the broker's log says so",
			Fix:     d.Cause.Fix(d.Bridge),
			Detail:  lines})
	}
}

// checkBridgeStates asks the running broker (BridgeStates) for each
// bridge's state: a fact lists them, and a bridge the broker says is down
// that its log did not explain is a finding of its own (a broker that logs
// to the journal or syslog, whose lines doctor does not read).
func (c *Checker) checkBridgeStates(ctx context.Context, bridges []bridge.Bridge, explained map[string]bool) {
	if c.BridgeStates == nil {
		return
	}
	states, err := c.BridgeStates(ctx, bridges)
	if err != nil {
		c.fact("bridge states", "not read: %v", err)
		return
	}
	var list []string
	for _, b := range bridges {
		st := states[b.Name]
		if st == "" {
			st = "unknown"
		}
		list = append(list, b.Name+" "+st)
		if st != "not connected" || explained[b.Name] {
			continue
		}
		c.add(Finding{ID: IDBridgeDown, Severity: Warning, Subject: "bridge " + b.Name + " (" + b.Addresses[0] + ")",
			Problem: "the broker says the bridge is not connected (" + b.StateTopic() + " is 0)",
			Why:     "its topics are not forwarded",
			Fix:     "the broker's log says why (sudo journalctl -u mosquitto -n 50, or its log_dest file); then `sudo mosqprov verify` checks it again"})
	}
	c.fact("bridge states", "%s (read as the status identity)", strings.Join(list, ", "))
}

func names(bridges []bridge.Bridge) string {
	var n []string
	for _, b := range bridges {
		n = append(n, b.Name)
	}
	return strings.Join(n, ", ")
}
