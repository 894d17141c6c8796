package doctor

import (
	"crypto/rand"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// crl writes a CRL signed at signed (valid pki.CRLDays from then) to both copies.
func (in *install) crl(signed time.Time) {
	in.t.Helper()
	data, _, err := pki.SignCRL(rand.Reader, signed, in.ca, big.NewInt(1), []pki.Revoked{{Serial: big.NewInt(42), At: signed}})
	if err != nil {
		in.t.Fatal(err)
	}
	in.write(layout.CACRL, data, 0o644, 0, 0)
	in.write(layout.BrokerCRL, data, 0o644, 0, 0)
}

const mtlsDropIn = `# Managed by mosqprov: hand edits are overwritten.
allow_anonymous false

listener 8883
protocol mqtt
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
cafile /etc/mosquitto/certs/ca.crt
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
crlfile /etc/mosquitto/certs/crl.pem

listener 9443
protocol websockets
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
cafile /etc/mosquitto/certs/ca.crt
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
crlfile /etc/mosquitto/certs/crl.pem
`

func TestCRLFindings(t *testing.T) {
	t.Run("fresh", func(t *testing.T) {
		in := newInstall(t)
		in.crl(time.Now())
		r := in.run(nil)
		for _, id := range []string{IDCRLExpired, IDCRLExpiring, IDCRLBroken} {
			if f, ok := find(r, id); ok {
				t.Errorf("fresh CRL: %+v", f)
			}
		}
		found := false
		for _, f := range r.Facts {
			found = found || f.Name == "revocation list" && strings.HasPrefix(f.Value, "1 revoked, next update ")
		}
		if !found {
			t.Errorf("no revocation list fact: %+v", r.Facts)
		}
	})
	t.Run("not re-signed", func(t *testing.T) {
		in := newInstall(t)
		in.crl(time.Now().AddDate(0, 0, -pki.CRLDays+20))
		wantFinding(t, in.run(nil), IDCRLExpiring, Warning, "next update is due in 19 days")
	})
	t.Run("past next update", func(t *testing.T) {
		in := newInstall(t)
		in.crl(time.Now().AddDate(0, 0, -pki.CRLDays-2))
		f := wantFinding(t, in.run(nil), IDCRLExpired, Error, "next update was due on")
		if !strings.Contains(f.Why, "every client certificate") {
			t.Errorf("why: %s", f.Why)
		}
	})
	t.Run("wss on 2.0", func(t *testing.T) {
		in := newInstall(t)
		in.crl(time.Now())
		in.write(layout.DropIn, []byte(mtlsDropIn), 0o644, 0, 0)
		wantFinding(t, in.run(nil), IDCRLWebSockets, Warning, "wss listener on port 9443 requires client certificates but does not check the revocation list")
		if f, ok := find(in.run(nil), IDCRLWebSockets); ok && strings.Contains(f.Subject, "8883") {
			t.Errorf("mqtts flagged: %+v", f)
		}
	})
	t.Run("wss on 2.1", func(t *testing.T) {
		in := newInstall(t)
		in.crl(time.Now())
		in.write(layout.DropIn, []byte(mtlsDropIn), 0o644, 0, 0)
		in.runner.On("dpkg-query", system.Output{Stdout: []byte("mosquitto\tinstalled\t2.1.2-1\n")}, nil)
		if f, ok := find(in.run(nil), IDCRLWebSockets); ok {
			t.Errorf("2.1 checks the CRL on wss: %+v", f)
		}
	})
}
