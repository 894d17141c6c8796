package doctor

// The files mosqprov manages: symlinks, owners and modes, whether the
// broker can read them, and drift since the last apply.

import (
	"errors"
	"fmt"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// secretFiles are the files only the broker may read, as the configuration
// names them (mosqprov's paths when it doesn't).
func (c *Checker) secretFiles() []secretFile {
	pw, acl := layout.PasswordFile, layout.ACLFile
	if s, ok := c.setting("password_file"); ok {
		pw = s.Value
	}
	if s, ok := c.setting("acl_file"); ok {
		acl = s.Value
	}
	return []secretFile{
		{pw, "password file", "its hashes can be cracked offline by whoever reads them"},
		{acl, "ACL file", "it tells every user's topics to whoever reads it"},
		{layout.ServerKey, "server key", "whoever reads it can impersonate the broker to every client"},
	}
}

type secretFile struct{ path, what, exposure string }

func (c *Checker) owner(fi system.FileInfo) string {
	who := func(id int, name string) string {
		switch {
		case c.broker != nil && id == c.broker.UID && name == "user":
			return layout.BrokerUser
		case c.broker != nil && id == c.broker.GID && name == "group":
			return layout.BrokerUser
		case id == 0:
			return "root"
		}
		return fmt.Sprint(id)
	}
	return fmt.Sprintf("owner %s:%s, mode %04o", who(fi.UID, "user"), who(fi.GID, "group"), fi.Mode)
}

// readableByBroker applies the permission bits the kernel would for the
// broker's user (its primary group only).
func (c *Checker) readableByBroker(fi system.FileInfo) bool {
	if c.broker == nil {
		return fi.Mode&0o004 != 0
	}
	switch {
	case fi.UID == c.broker.UID:
		return fi.Mode&0o400 != 0
	case fi.GID == c.broker.GID:
		return fi.Mode&0o040 != 0
	}
	return fi.Mode&0o004 != 0
}

// checkSymlinks names every managed file that is a symlink as one: its
// mode is the link's (0777), not the file's, and mosqprov refuses to read
// or write through it, as mosquitto 2.1 opens its password and ACL files
// with O_NOFOLLOW.
func (c *Checker) checkSymlinks() map[string]bool {
	links := map[string]bool{}
	paths := []string{layout.CAKey, layout.CACert, layout.BrokerCACert, layout.ServerCert, layout.DropIn, state.File}
	for _, f := range c.secretFiles() {
		paths = append(paths, f.path)
	}
	for _, p := range paths {
		fi, err := c.Sys.Stat(p)
		if err != nil || !fi.Symlink || links[p] {
			continue
		}
		links[p] = true
		target := "?"
		var le *system.LinkError
		if _, err := c.Sys.ReadFile(p); errors.As(err, &le) {
			target = le.Target
		}
		c.add(Finding{ID: IDSymlink, Severity: Error, Subject: p,
			Problem: fmt.Sprintf("%s is a symlink to %s, not a file", p, target),
			Why:     "mosqprov never reads or writes the files it manages through a symlink, so apply and the user and cert commands refuse it; mosquitto 2.1 refuses a linked password or ACL file too, and whoever can change the link chooses what the broker reads",
			Fix:     fmt.Sprintf("sudo cp --remove-destination \"$(readlink -f %s)\" %s   (then run doctor again)", p, p)})
	}
	return links
}

func (c *Checker) checkFiles() {
	links := c.checkSymlinks()
	// The CA key: the broker never needs it.
	for _, p := range []string{layout.CAKey, layout.BrokerCertDir + "/ca.key", layout.MosquittoDir + "/ca_certificates/ca.key"} {
		fi, err := c.Sys.Stat(p)
		if err != nil || links[p] {
			continue
		}
		switch {
		case c.broker != nil && c.readableByBroker(fi):
			c.add(Finding{ID: IDCAKeyReadable, Severity: Error, Subject: p,
				Problem: fmt.Sprintf("the CA private key is readable by the broker's user %s (%s)", layout.BrokerUser, c.owner(fi)),
				Why:     "the broker never needs it, and whoever can read it can mint certificates every client trusts",
				Fix:     fmt.Sprintf("sudo chown root:root %s && sudo chmod 600 %s", p, p)})
		case fi.Mode&0o044 != 0:
			c.add(Finding{ID: IDCAKeyReadable, Severity: Error, Subject: p,
				Problem: fmt.Sprintf("the CA private key is readable by users other than root (%s)", c.owner(fi)),
				Why:     "whoever can read it can mint certificates every client trusts",
				Fix:     fmt.Sprintf("sudo chown root:root %s && sudo chmod 600 %s", p, p)})
		}
	}
	if c.broker == nil {
		return
	}
	for _, f := range c.secretFiles() {
		fi, err := c.Sys.Stat(f.path)
		if err != nil || links[f.path] {
			continue
		}
		if !c.readableByBroker(fi) {
			c.add(Finding{ID: IDSecretUnreadable, Severity: Error, Subject: f.path,
				Problem: fmt.Sprintf("the %s is not readable by the broker's user %s (%s)", f.what, layout.BrokerUser, c.owner(fi)),
				Why:     "since 2.0 the broker opens it after dropping to " + layout.BrokerUser + ": it fails to start, or keeps the old copy on reload",
				Fix:     fixOwner(f.path)})
			continue
		}
		switch {
		case fi.Mode&0o004 != 0:
			c.add(Finding{ID: IDSecretExposed, Severity: Error, Subject: f.path,
				Problem: fmt.Sprintf("the %s is readable by every user on this machine (%s)", f.what, c.owner(fi)),
				Why:     f.exposure + "; mosquitto 2.0.16 and later warn about it and say a future version will refuse it",
				Fix:     fixOwner(f.path)})
		case fi.Mode&0o040 != 0 && fi.GID != c.broker.GID:
			c.add(Finding{ID: IDSecretExposed, Severity: Warning, Subject: f.path,
				Problem: fmt.Sprintf("the %s is readable by a group other than %s (%s)", f.what, layout.BrokerUser, c.owner(fi)),
				Why:     f.exposure,
				Fix:     fixOwner(f.path)})
		case fi.UID != c.broker.UID:
			c.add(Finding{ID: IDSecretOwner, Severity: Warning, Subject: f.path,
				Problem: fmt.Sprintf("the %s is not owned by %s (%s)", f.what, layout.BrokerUser, c.owner(fi)),
				Why:     "mosquitto 2.0.16 and later (Debian 13) warn when a sensitive file's owner is not the broker's user, and say a future version will refuse to open it",
				Fix:     fixOwner(f.path)})
		}
	}
}

func (c *Checker) checkDrift() {
	st, err := state.Load(c.Sys)
	if err != nil || st == nil {
		if c.Spec != nil {
			c.add(Finding{ID: IDNoState, Severity: Info, Subject: state.File,
				Problem: "no record of a previous apply: hand edits can't be told apart",
				Why:     "doctor compares the files with what the last apply left",
				Fix:     "sudo mosqprov apply"})
		}
		return
	}
	c.fact("last apply", "%s", st.Applied)
	for _, d := range st.Drift(c.Sys) {
		problem := "changed by hand since the last apply (" + st.Applied + ")"
		if d.Removed {
			problem = "removed since the last apply (" + st.Applied + ")"
		}
		c.add(Finding{ID: IDDrift, Severity: Warning, Subject: d.Path, Problem: problem,
			Why: "the next apply puts back what broker.yaml says, undoing the edit; a hand edit belongs in broker.yaml",
			Fix: "sudo mosqprov plan   (shows the difference), then put the change in " + layout.Spec + " and `sudo mosqprov apply`"})
	}
}
