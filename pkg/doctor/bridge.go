package doctor

import (
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
func (c *Checker) checkBridges() {
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
		c.add(Finding{ID: IDBridgeDown, Severity: sev, Subject: "bridge " + d.Bridge + " (" + d.Address + ")",
			Problem: "the bridge does not connect: " + d.Cause.Explain(),
			Why:     "its topics are not forwarded; the broker's log says so",
			Fix:     d.Cause.Fix(d.Bridge),
			Detail:  lines})
	}
}

func names(bridges []bridge.Bridge) string {
	var n []string
	for _, b := range bridges {
		n = append(n, b.Name)
	}
	return strings.Join(n, ", ")
}
