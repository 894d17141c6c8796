package plan

import (
	"context"

	"github.com/mosqprov/mosqprov/pkg/apt"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// installedBroker is the installed mosquitto's version, for what 2.0 and
// 2.1 need written differently: what the package step found, else what
// the last apply recorded (state.json), else dpkg's answer. ok is false when
// nothing says (a --root without dpkg and no earlier apply).
func installedBroker(ctx context.Context, sys system.System, r *Result) (apt.Version, bool) {
	if v, err := apt.ParseVersion(r.BrokerVersion); err == nil {
		return v, true
	}
	if st, err := state.Load(sys); err == nil && st != nil {
		if v, err := apt.ParseVersion(st.Broker); err == nil {
			return v, true
		}
	}
	if sys.Root() != "/" && !existsOn(sys, "/var/lib/dpkg/status") {
		return apt.Version{}, false
	}
	if v, err := apt.BrokerVersion(ctx, sys); err == nil {
		return v, true
	}
	return apt.Version{}, false
}

func existsOn(sys system.System, p string) bool {
	_, err := sys.Stat(p)
	return err == nil
}
