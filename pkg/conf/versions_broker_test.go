package conf_test

import (
	"testing"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/conf"
)

// TestDefaultPacketCap measures a default that differs between the
// versions: without max_packet_size, 2.0.11 and 2.0.21 take a message of
// 2.1 MB, 2.1.2 refuses any packet over 2,000,000 bytes ("oversize
// packet") and takes 1.9 MB. docs/reference.md says so next to
// max_packet_size, the setting that raises it.
func TestDefaultPacketCap(t *testing.T) {
	brokertest.Each(t, func(t *testing.T, m brokertest.Mosquitto) {
		d := newDebianWith(t, m)
		d.write(t, conf.Tunables{}, 0)
		b := d.start(t)
		if !publishFile(t, d, 1_900_000) {
			t.Fatalf("mosquitto %s: a 1.9 MB message did not go through\n%s", m, b.ReadLog())
		}
		if got, want := publishFile(t, d, 2_100_000), !m.AtLeast(2, 1); got != want {
			t.Fatalf("mosquitto %s: a 2.1 MB message went through: %v, want %v\n%s", m, got, want, b.ReadLog())
		}
	})
}
