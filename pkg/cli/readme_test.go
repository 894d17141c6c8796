package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
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

// readme returns the user documentation: README.md and the pages under docs/
// it links to, which together document these commands (architecture.md is
// the code's map, not a user's page).
func readme(t *testing.T) string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, p := range append([]string{filepath.Join("..", "..", "README.md")}, pages...) {
		if filepath.Base(p) == "architecture.md" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		all.WriteString("\n")
	}
	return all.String()
}

// readmeCodeLines are the lines of the README's fenced code blocks: the
// examples a reader copies, as opposed to prose that only names a command.
func readmeCodeLines(doc string) []string {
	var lines []string
	inside := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inside = !inside
			continue
		}
		if !inside {
			continue
		}
		// A line ending in a backslash continues on the next one.
		if n := len(lines); n > 0 && strings.HasSuffix(lines[n-1], "\\") {
			lines[n-1] = strings.TrimSuffix(lines[n-1], "\\") + " " + strings.TrimSpace(line)
			continue
		}
		lines = append(lines, line)
	}
	return lines
}

// commandWords are the words of each mosqprov call on an example line, with
// flags (and the values of the global flags that take one) left out:
// "sudo mosqprov --root /mnt cert server --name x" gives [cert server x].
func commandWords(line string) [][]string {
	var calls [][]string
	for _, args := range exampleArgs(line) {
		var words []string
		for j := 0; j < len(args); j++ {
			switch w := args[j]; {
			case w == "--root" || w == "-o" || w == "--output" || w == "-f":
				j++
			case strings.HasPrefix(w, "-"):
			default:
				words = append(words, w)
			}
		}
		calls = append(calls, words)
	}
	return calls
}

// covers says whether words (from an example) run the command path, where an
// example may name alternatives: "service start|stop|restart|reload".
func covers(words, path []string) bool {
	if len(words) < len(path) {
		return false
	}
	for i, p := range path {
		if !slices.Contains(strings.Split(words[i], "|"), p) {
			return false
		}
	}
	return true
}

// TestREADMEHasAnExampleOfEveryCommand holds the README to the command tree:
// a command added without an example in a code block fails here.
func TestREADMEHasAnExampleOfEveryCommand(t *testing.T) {
	a, _, _ := testApp(t, "")
	root := NewRootCmd(a)
	root.InitDefaultCompletionCmd()
	var calls [][]string
	for _, line := range readmeCodeLines(readme(t)) {
		calls = append(calls, commandWords(line)...)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		var subs []*cobra.Command
		for _, s := range c.Commands() {
			// PowerShell completion is cobra's; nobody runs it on a Pi.
			if s.IsAvailableCommand() && s.Name() != "help" && s.Name() != "powershell" {
				subs = append(subs, s)
			}
		}
		if len(subs) == 0 {
			path := strings.Fields(c.CommandPath())[1:]
			if !slices.ContainsFunc(calls, func(w []string) bool { return covers(w, path) }) {
				t.Errorf("README.md has no example (in a code block) of %q", c.CommandPath())
			}
		}
		for _, s := range subs {
			walk(s)
		}
	}
	walk(root)
}

// exampleArgs are the arguments of each mosqprov call on an example line, up
// to where the shell takes over again (a pipe, a redirection, a comment);
// "a|b" alternatives are taken as their first.
func exampleArgs(line string) [][]string {
	var calls [][]string
	fields := shellFields(line)
	for i, f := range fields {
		if !strings.HasSuffix(f, "(mosqprov") && !(commandPosition(fields[:i]) &&
			(f == "mosqprov" || strings.HasSuffix(f, "/mosqprov"))) {
			continue
		}
		var args []string
		for _, w := range fields[i+1:] {
			if strings.ContainsAny(w[:1], "|&<>#;") {
				break
			}
			last := strings.HasSuffix(w, ")")
			args = append(args, strings.Trim(strings.TrimSuffix(w, ")"), `'"`))
			if last {
				break
			}
		}
		calls = append(calls, args)
	}
	return calls
}

// shellFields splits line at blanks outside quotes, as a shell does, and
// keeps the quotes (exampleArgs trims them): --topic 'a/# out 1' is one word.
func shellFields(line string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0:
			cur.WriteRune(r)
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote, in = r, true
			cur.WriteRune(r)
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			in = true
			cur.WriteRune(r)
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// commandPosition says whether the word after before is one the shell (or
// sudo, cron, Ansible) runs as a command, rather than an argument such as
// "go build -o mosqprov" or "scp mosqprov host:".
func commandPosition(before []string) bool {
	if len(before) == 0 {
		return true
	}
	prev := before[len(before)-1]
	switch {
	case slices.Contains([]string{"sudo", "exec", "&&", "||", "|", ";", "$", "root"}, prev),
		strings.HasPrefix(prev, "--preserve-env"),
		strings.HasSuffix(prev, ":"),                                 // YAML: "command: mosqprov apply ..."
		strings.Contains(prev, "=") && !strings.HasPrefix(prev, "-"): // VAR=value mosqprov
		return true
	}
	return false
}

// TestREADMEExamplesParse runs every example's command line through the real
// command tree's flag parsing, so a renamed flag or command fails here and
// not on a reader's Pi. Synopsis lines ("[-f FILE]") are not examples.
func TestREADMEExamplesParse(t *testing.T) {
	a, _, _ := testApp(t, "")
	n := 0
	for _, line := range readmeCodeLines(readme(t)) {
		if strings.Contains(line, " [-") {
			continue
		}
		for _, args := range exampleArgs(line) {
			// "service start|stop": one of the alternatives stands for all.
			for i, w := range args {
				args[i], _, _ = strings.Cut(w, "|")
			}
			root := NewRootCmd(a)
			root.InitDefaultCompletionCmd()
			cmd, rest, err := root.Find(args)
			if err == nil {
				err = cmd.ParseFlags(rest)
			}
			if err == nil && cmd.Args != nil {
				err = cmd.Args(cmd, cmd.Flags().Args())
			}
			if err != nil {
				t.Errorf("README example %q: %v", strings.TrimSpace(line), err)
			}
			n++
		}
	}
	if n < 50 {
		t.Errorf("found only %d example command lines in README.md; is the parser broken?", n)
	}
}
