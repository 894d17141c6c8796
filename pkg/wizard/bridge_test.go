package wizard

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mosqprov/mosqprov/pkg/spec"
)

// The wizard asks nothing about bridges, and keeps those broker.yaml has:
// through the answers, and through the file it writes (spec.Marshal).
func TestKeepsBridges(t *testing.T) {
	start, err := spec.Parse("broker.yaml", []byte(`hostname: mqtt.home.arpa
listeners:
  - {type: mqtts, port: 18883}
bridges:
  - name: cloud
    addresses: ["mqtt.example.com:8883", "backup.example.com:8883"]
    topics:
      - {pattern: "home/#", direction: out, qos: 1, remote_prefix: pi1/}
      - {pattern: "", direction: in, local_prefix: cmd/x, remote_prefix: pi1/cmd/x}
    tls: {ca_file: /etc/mosqprov/cloud-ca.crt, cert_file: /etc/mosqprov/cloud.crt, key_file: /etc/mosqprov/cloud.key, version: tlsv1.3}
    username: pi1
    password_file: /run/secrets/cloud
    protocol: "5"
    client_id: pi1
    cleansession: true
    keepalive: 30
    notifications: false
    try_private: false
    bridge_outgoing_retain: false
    start_type: lazy
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := start.Validate(); err != nil {
		t.Fatal(err)
	}
	p := newScript(t,
		step{"Host name", dflt{}},
		step{"Other names", dflt{}},
		step{"IP addresses", dflt{}},
		step{"Other IP addresses", dflt{}},
		step{"Listeners", dflt{}},
		step{"Key type", dflt{}},
		step{"Add a user?", false},
	)
	s, err := Run(p, pi, start)
	if err != nil {
		t.Fatal(err)
	}
	p.done()
	if diff := cmp.Diff(start.Bridges, s.Bridges); diff != "" {
		t.Fatalf("bridges after the wizard (-before +after):\n%s", diff)
	}
	data, err := spec.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := spec.Parse("broker.yaml", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(start.Bridges, back.Bridges); diff != "" {
		t.Fatalf("bridges in the file the wizard writes (-before +after):\n%s\n%s", diff, data)
	}
}
