// Package layout names the files mosqprov manages on the target system and
// the owners and modes they must have. Paths are target paths; pkg/system
// resolves them under --root.
package layout

import (
	"errors"
	"io/fs"

	"github.com/mosqprov/mosqprov/pkg/system"
)

const (
	// BrokerUser is the account Debian's mosquitto package creates. Since 2.0
	// the broker drops to it right after reading the config and before it opens
	// certificates, keys, the password file and the ACL file (REFERENCE.md).
	BrokerUser = "mosquitto"

	MosquittoDir  = "/etc/mosquitto"
	MosquittoConf = "/etc/mosquitto/mosquitto.conf"
	ConfDir       = "/etc/mosquitto/conf.d"
	// DropIn is our configuration: Debian's mosquitto.conf includes conf.d, and
	// editing mosquitto.conf itself makes every package upgrade stop at a
	// conffile question.
	DropIn       = "/etc/mosquitto/conf.d/mosqprov.conf"
	PasswordFile = "/etc/mosquitto/passwd"
	// LimitsDropIn raises the unit's open-file limit when the listeners'
	// max_connections need it (pkg/systemd, limits.go).
	LimitsDropIn = "/etc/systemd/system/mosquitto.service.d/mosqprov-limits.conf"
	ACLFile      = "/etc/mosquitto/acl"

	BrokerCertDir = "/etc/mosquitto/certs"
	BrokerCACert  = "/etc/mosquitto/certs/ca.crt"
	ServerCert    = "/etc/mosquitto/certs/server.crt"
	ServerKey     = "/etc/mosquitto/certs/server.key"

	StateDir = "/etc/mosqprov"
	// CADir holds the CA key: root only. The broker never needs ca.key, and
	// whoever can read it can mint certificates every client trusts.
	CADir     = "/etc/mosqprov/ca"
	CAKey     = "/etc/mosqprov/ca/ca.key"
	CACert    = "/etc/mosqprov/ca/ca.crt"
	ClientDir = "/etc/mosqprov/clients"
	Spec      = "/etc/mosqprov/broker.yaml"
)

// NoBrokerUser starts the warning a file gets when the broker's account does
// not exist yet; a plan that installs the package says instead what the
// install will do (pkg/plan).
const NoBrokerUser = "user " + BrokerUser + " does not exist (is mosquitto installed?)"

// BrokerSecret is the owner and mode of a file only the broker may read (the
// password file, the ACL file): mosquitto:mosquitto 0600, which is also what
// 2.0.16+ checks before warning. Where that user doesn't exist yet (mosquitto
// not installed) it falls back to the caller, still 0600, and says so in
// fallback so the command can warn.
func BrokerSecret(sys system.System) (attr system.Attr, fallback string) {
	if _, err := sys.LookupUser(BrokerUser); err != nil {
		var missing system.ErrNoSuchUser
		if errors.As(err, &missing) {
			return system.Attr{Mode: 0o600}, NoBrokerUser + "; the file is owned by " + sys.CurrentAccount().Name + " and the broker may not be able to read it"
		}
	}
	return system.Attr{Mode: 0o600, User: BrokerUser, Group: BrokerUser}, ""
}

// Public is a world-readable file owned by root (certificates).
var Public = system.Attr{Mode: 0o644, User: "root", Group: "root"}

// RootOnly is a root-owned secret (the CA key).
var RootOnly = system.Attr{Mode: 0o600, User: "root", Group: "root"}

// Exists reports whether path exists on sys.
func Exists(sys system.System, path string) bool {
	_, err := sys.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// The CA's certificate revocation list (`mosqprov cert revoke`).
const (
	// CACRL is the CA's own copy: the record of what was revoked, which the
	// broker's copy is rebuilt from.
	CACRL = "/etc/mosqprov/ca/crl.pem"
	// BrokerCRL is the copy the broker reads (crlfile of the mutual-TLS
	// listeners): public, like ca.crt.
	BrokerCRL = "/etc/mosquitto/certs/crl.pem"
)
