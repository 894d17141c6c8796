package plan

import (
	"context"
	"errors"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/certs"
	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// StepCRL keeps the CA's revocation list (spec `revoked:`).
const StepCRL = "revocation list"

// crlStep puts the certificates of the spec's revoked clients on the CA's
// CRL and re-signs a CRL whose next update is near (pkg/certs.EnsureCRL, the
// function `cert revoke` and `cert renew` call). Without revoked clients and
// without a CRL on disk it does nothing. A mutual-TLS wss listener is named
// in a warning: WebSockets listeners don't check the CRL (issue 3042).
func crlStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	if !d.tls {
		return nil
	}
	var targets []certs.Target
	for _, r := range s.RevokedSerials() {
		targets = append(targets, certs.Target{Field: r.Field, Serial: r.Serial})
	}
	res, err := certs.EnsureCRL(sys, certs.CRLOptions{Paths: certs.DefaultPaths(), Revoke: s.RevokedNames(), Targets: targets, Field: "revoked", Rand: o.Rand})
	var ie *errs.InputError
	if errors.As(err, &ie) && strings.HasPrefix(ie.Field, "revoked") {
		return s.At(ie.Field, err)
	}
	if err != nil {
		return err
	}
	out := res.Result
	// 2.0.11 and 2.0.21 let a revoked certificate in over wss; 2.1.2
	// refuses it (TestApplyRevokedRealBroker on each).
	if v, known := installedBroker(ctx, sys, r); res.Exists && !(known && v.AtLeast(2, 1)) {
		for _, l := range s.Listeners {
			if l.MutualTLS && l.WebSockets() {
				out.Warn("%s", conf.WebSocketsCRLWarning(s.ConfListener(l)))
			}
		}
	}
	r.add(StepCRL, out)
	return nil
}
