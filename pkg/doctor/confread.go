package doctor

import (
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/layout"
)

// IDConfUnreadable is a configuration file the broker can read only as root.
const IDConfUnreadable = "conf-unreadable"

// checkConfReadable flags each configuration file the broker reads (its
// main file and every *.conf of its include_dir) that its user can't read.
// The broker reads them as root when it starts, and again as that user on
// every reload (SIGHUP), where such a file stops the read: the files after
// it, mosqprov.conf and with it the password and ACL files, are not read
// again, and mosqprov's reloads fail (checked with 2.0.11 and 2.0.21 under
// Debian's unit, TestApplyInRealSystemd in pkg/plan). Under 2.1.2's Debian
// unit (User=mosquitto) the broker is that user from its start, so such a
// file stops every start too (TestApplyInRealSystemd/trixie/mosquitto_2.1).
// A symlink is left alone: its own mode says nothing of its target's.
func (c *Checker) checkConfReadable() {
	if c.cfg == nil || c.broker == nil {
		return
	}
	for _, p := range c.cfg.Files {
		fi, err := c.Sys.Stat(p)
		if err != nil || fi.Symlink || c.readableByBroker(fi) {
			continue
		}
		c.add(Finding{ID: IDConfUnreadable, Severity: Error, Subject: p,
			Problem: fmt.Sprintf("the broker's configuration file %s is not readable by its user %s (%s)", p, layout.BrokerUser, c.owner(fi)),
			Why:     "on every reload the broker reads it as " + layout.BrokerUser + ", and stops at this file: the files after it (mosqprov.conf, the password and ACL files) are not read again, so new users and passwords are not taken, and mosqprov's reloads fail; mosquitto 2.0's unit starts the broker as root, but 2.1's (User=" + layout.BrokerUser + ") starts it as " + layout.BrokerUser + " too, so it does not start at all",
			Fix:     fmt.Sprintf("sudo chgrp %s %s && sudo chmod 640 %s", layout.BrokerUser, p, p)})
	}
}
