package cli

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// readmeTable returns the first column of the table under the heading
// "## title" of docs/reference.md, where the README links for the reference.
func readmeTable(t *testing.T, title string) []string {
	t.Helper()
	data, err := os.ReadFile("../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("docs/reference.md has no %q section", title)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var first []string
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		first = append(first, strings.TrimSpace(cells[1]))
	}
	return first[1:] // without the header row
}

// TestReadmeExitCodes: the README's table lists exactly the codes exit.go
// defines.
func TestReadmeExitCodes(t *testing.T) {
	var got []int
	for _, cell := range readmeTable(t, "Exit codes") {
		n, err := strconv.Atoi(cell)
		if err != nil {
			t.Fatalf("exit code cell %q", cell)
		}
		got = append(got, n)
	}
	want := []int{ExitOK, ExitError, ExitChanges, ExitUsage, ExitNoSystemd, ExitRolledBack, ExitInterrupted}
	if !slices.Equal(got, want) {
		t.Fatalf("README lists %v, exit.go defines %v", got, want)
	}
}

// TestReadmeGlobalFlags: the README's table lists exactly the root
// command's persistent flags.
func TestReadmeGlobalFlags(t *testing.T) {
	flagName := regexp.MustCompile(`--([a-z-]+)`)
	var got []string
	for _, cell := range readmeTable(t, "Global flags") {
		m := flagName.FindStringSubmatch(cell)
		if m == nil {
			t.Fatalf("flag cell %q", cell)
		}
		got = append(got, m[1])
	}
	var want []string
	NewRootCmd(NewApp(&IOStreams{})).PersistentFlags().VisitAll(func(f *pflag.Flag) { want = append(want, f.Name) })
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("README lists %v, the root command has %v", got, want)
	}
}
