package plan

import (
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/internal/brokertest"
)

// noDeprecation fails t when the broker b (mosquitto m) says something it
// read is deprecated: on its stderr (2.1 says so while it reads its
// configuration, before it opens its log file) or in its log (on a
// reload).
func noDeprecation(t *testing.T, m brokertest.Mosquitto, b *brokertest.Broker) {
	t.Helper()
	for _, line := range strings.Split(b.Output()+"\n"+b.ReadLog(), "\n") {
		if strings.Contains(strings.ToLower(line), "deprecat") || strings.Contains(line, "Please replace") {
			t.Errorf("mosquitto %s: %s", m, line)
		}
	}
}
