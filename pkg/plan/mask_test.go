package plan

import (
	"strings"
	"testing"
)

// No password-file line that could hold a secret reaches a plan: hashes,
// commented-out user lines with a hash or a plaintext password, and a
// password pasted on a line of its own.
func TestMaskEveryLineThatCouldHoldASecret(t *testing.T) {
	old := "alice:$7$101$c2FsdHNhbHQ$aGFzaGhhc2g=\n" +
		"#bob:$7$101$b2xkc2FsdA$b2xkaGFzaA==\n" +
		"# carol:hunter2\n" +
		"correct horse battery staple\n" +
		"# a plain comment\n" +
		"\n"
	newer := old + "#dave:s3cret-in-a-comment\r\n"
	_, after := maskPair([]byte(old), []byte(newer))
	for _, secret := range []string{"c2FsdHNhbHQ", "b2xkc2FsdA", "hunter2", "correct horse", "s3cret"} {
		if strings.Contains(string(after), secret) {
			t.Errorf("%q shown in the plan:\n%s", secret, after)
		}
	}
	for _, kept := range []string{"alice:$7$(hash masked)\n", "#bob:(masked)\n", "# carol:(masked)\n", "# a plain comment\n", "#dave:(masked)\r\n", "(line masked: the broker reads no user from it)\n"} {
		if !strings.Contains(string(after), kept) {
			t.Errorf("%q not in the masked file:\n%s", kept, after)
		}
	}
}
