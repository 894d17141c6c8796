package doctor

// The mosquitto package and its systemd unit.

import (
	"context"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

func (c *Checker) checkPackage(ctx context.Context) {
	pkgs, err := apt.Query(ctx, c.Sys, "mosquitto")
	if err != nil || len(pkgs) == 0 || !pkgs[0].Installed() {
		problem := "the mosquitto package is not installed"
		if err != nil {
			problem = "the mosquitto package's state can't be read: " + err.Error()
		}
		c.add(Finding{ID: IDPackageMissing, Severity: Error, Subject: "mosquitto",
			Problem: problem,
			Why:     "there is no broker to run",
			Fix:     "sudo mosqprov install"})
		return
	}
	c.ver = pkgs[0].Version
	c.fact("mosquitto", "%s", c.ver)
}

func (c *Checker) checkService(ctx context.Context) {
	if c.Service == nil {
		return
	}
	if ok, why := c.Service.Manageable(); !ok {
		fix := "run doctor without --root on the broker's machine"
		if c.Sys.Root() == "/" {
			fix = "none needed in a container or chroot; there, start the broker with `mosquitto -c " + layout.MosquittoConf + "`"
		}
		c.add(Finding{ID: IDServiceUnchecked, Severity: Info, Subject: systemd.Unit,
			Problem: "the service was not checked: " + why,
			Why:     "doctor asks systemd whether the broker runs",
			Fix:     fix})
		return
	}
	st, err := c.Service.Status(ctx)
	if err != nil {
		c.add(Finding{ID: IDServiceInactive, Severity: Error, Subject: systemd.Unit,
			Problem: "the service can't be queried: " + err.Error(),
			Why:     "no broker runs without its unit",
			Fix:     "sudo mosqprov install"})
		return
	}
	enabled := st.Enabled
	c.fact("service", "%s (%s), %s", st.ActiveState, st.SubState, enabled)
	switch {
	case st.ActiveState == "active" || st.ActiveState == "reloading":
	case st.ActiveState == "activating" && st.SubState != "auto-restart":
		c.add(Finding{ID: IDServiceInactive, Severity: Warning, Subject: systemd.Unit,
			Problem: "the broker is starting (" + st.SubState + ")",
			Why:     "clients can't connect until it is up",
			Fix:     "run doctor again in a moment; `journalctl -u mosquitto` shows progress"})
	default:
		state := st.ActiveState
		if st.SubState == "auto-restart" {
			state = "failing; systemd keeps restarting it"
		}
		f := Finding{ID: IDServiceInactive, Severity: Error, Subject: systemd.Unit,
			Problem: "the broker is not running (" + state + ")",
			Why:     "no client can connect",
			Fix:     "fix what the journal says, then sudo mosqprov service start   (journalctl -u mosquitto -n 50 shows more)"}
		lines := st.Journal
		if last := lastError(lines); last != "" {
			f.Problem += "; last journal error: " + last
		}
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		f.Detail = lines
		c.add(f)
	}
	wantEnabled := c.Spec == nil || c.Spec.Service.Enabled()
	if wantEnabled && enabled != "enabled" && enabled != "static" {
		c.add(Finding{ID: IDServiceDisabled, Severity: Warning, Subject: systemd.Unit,
			Problem: "the service is not enabled (" + enabled + ")",
			Why:     "the broker won't start after a reboot",
			Fix:     "sudo mosqprov service enable"})
	}
}

// lastError picks the journal line that most likely says why the broker
// stopped: the last one mosquitto marked as an error, else systemd's.
func lastError(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if strings.Contains(l, "Error") || strings.Contains(l, "error") || strings.Contains(l, "Unable") || strings.Contains(l, "Failed") {
			if _, msg, ok := strings.Cut(l, "]: "); ok {
				return strings.TrimSpace(msg)
			}
			return strings.TrimSpace(l)
		}
	}
	return ""
}
