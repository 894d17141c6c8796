package plan

import (
	"context"
	"fmt"
	"testing"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// TestMaxConnectionsNeedByVersion: apply finds the installed broker with
// dpkg (each version's own database, brokerRoot) and asks a reload for a
// listener's max_connections set, changed or removed on 2.1, a restart on
// 2.0 (what the real brokers do on SIGHUP: TestTunablesTakeEffect,
// pkg/conf). Any other listener change still restarts.
func TestMaxConnectionsNeedByVersion(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, func(t *testing.T, m brokertest.Mosquitto) {
		root := brokerRoot(t, m)
		port := brokertest.FreePort(t)
		reload := system.NeedRestart
		if m.AtLeast(2, 1) {
			reload = system.NeedReload
		}
		ctx := context.Background()
		for _, c := range []struct {
			listener string
			want     system.Need
		}{
			{"", system.NeedRestart}, // the first drop-in
			{", max_connections: 10", reload},
			{", max_connections: 20", reload},
			{"", reload},
		} {
			text := fmt.Sprintf("listeners:\n  - {type: mqtt, port: %d, bind: 127.0.0.1%s}\nallow_anonymous: true\npackage: {install: false}\nservice: {enable: false}\n", port, c.listener)
			s, err := spec.Parse("broker.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			res, err := Converge(ctx, dpkgSys(root), s, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Need != c.want {
				t.Errorf("mosquitto %s: listener%q: apply asks %s, want %s", m, c.listener, res.Need, c.want)
			}
		}
		// A listener moved to another port is a restart on each.
		text := fmt.Sprintf("listeners:\n  - {type: mqtt, port: %d, bind: 127.0.0.1, max_connections: 30}\nallow_anonymous: true\npackage: {install: false}\nservice: {enable: false}\n", brokertest.FreePort(t))
		s, err := spec.Parse("broker.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := Converge(ctx, dpkgSys(root), s, Options{}); err != nil || res.Need != system.NeedRestart {
			t.Errorf("mosquitto %s: a moved listener: apply asks %v (%v), want restart", m, res.Need, err)
		}
	})
}
