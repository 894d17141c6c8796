package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// manTestApp is an App on a temporary root whose output is captured.
func manTestApp(t *testing.T) (*App, *bytes.Buffer, string) {
	t.Helper()
	root := t.TempDir()
	var out bytes.Buffer
	a := NewApp(&IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	a.Sys = system.NewReal(root, system.WithRunner(&system.Recorder{}))
	return a, &out, root
}

// manTree is the real command tree plus commands this test invents, so the
// test fails if the generator only knows a fixed list of commands.
func manTree(a *App) *cobra.Command {
	root := NewRootCmd(a)
	extra := &cobra.Command{Use: "zz-extra", Short: "An invented command group"}
	extra.AddCommand(&cobra.Command{Use: "nested", Short: "An invented leaf", Example: "mosqprov zz-extra nested", Run: func(*cobra.Command, []string) {}})
	root.AddCommand(extra)
	root.AddCommand(&cobra.Command{Use: "zz-secret", Short: "Hidden", Hidden: true, Run: func(*cobra.Command, []string) {}})
	return root
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestManPagesFollowCommandTree(t *testing.T) {
	a, _, hostRoot := manTestApp(t)
	root := manTree(a)
	opts := &manOptions{App: a, Root: root, Dir: "/usr/share/man/man1"}
	if err := runMan(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(hostRoot, "usr/share/man/man1")
	got := listDir(t, dir)

	// Every visible command has a page, whoever added it; hidden ones don't.
	var want []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				walk(s)
			}
		}
	}
	walk(root)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	for _, must := range []string{"mosqprov.1", "mosqprov-version.1", "mosqprov-completion-bash.1", "mosqprov-zz-extra.1", "mosqprov-zz-extra-nested.1"} {
		if _, err := os.Stat(filepath.Join(dir, must)); err != nil {
			t.Errorf("missing %s: %v", must, err)
		}
	}
	for _, mustNot := range []string{"mosqprov-man.1", "mosqprov-zz-secret.1", "mosqprov-help.1"} {
		if _, err := os.Stat(filepath.Join(dir, mustNot)); err == nil {
			t.Errorf("%s should not have a page", mustNot)
		}
	}

	page := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	nested := page("mosqprov-zz-extra-nested.1")
	for _, s := range []string{`.TH "MOSQPROV-ZZ-EXTRA-NESTED" "1"`, "An invented leaf", "mosqprov zz-extra nested", "--root", "mosqprov-zz-extra(1)"} {
		if !strings.Contains(nested, s) {
			t.Errorf("mosqprov-zz-extra-nested.1 lacks %q:\n%s", s, nested)
		}
	}
	top := page("mosqprov.1")
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && !strings.Contains(top, "mosqprov-"+c.Name()+"(1)") {
			t.Errorf("mosqprov.1 SEE ALSO lacks %s", c.Name())
		}
	}
	for _, s := range []string{".SH EXIT STATUS", ".B 130", PasswordEnv, P12PasswordEnv, "/etc/mosqprov/ca/ca.key"} {
		if !strings.Contains(top, s) {
			t.Errorf("mosqprov.1 lacks %q", s)
		}
	}
	if strings.Contains(top, "Auto generated") {
		t.Error("mosqprov.1 carries cobra's dated trailer; regenerating would change the bytes")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "mosqprov.1")); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

// TestManPagesRender feeds every page to the real man-db and groff with
// warnings on: a page that renders with warnings is a broken page.
func TestManPagesRender(t *testing.T) {
	manBin, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man (man-db) is not installed")
	}
	a, _, hostRoot := manTestApp(t)
	if err := runMan(context.Background(), &manOptions{App: a, Root: manTree(a), Dir: "/man", Gzip: true}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(hostRoot, "man")
	for _, name := range listDir(t, dir) {
		cmd := exec.Command(manBin, "--warnings", "-l", filepath.Join(dir, name))
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LANG=C.UTF-8")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("man -l %s: %v\n%s", name, err, stderr.String())
			continue
		}
		if stderr.Len() > 0 {
			t.Errorf("man -l %s warns:\n%s", name, stderr.String())
		}
		title := strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".1")
		if !strings.Contains(stdout.String(), "NAME") || !strings.Contains(stdout.String(), title) {
			t.Errorf("man -l %s: no NAME section naming %s:\n%s", name, title, stdout.String())
		}
	}
}

func TestManIdempotentAndGzip(t *testing.T) {
	a, out, hostRoot := manTestApp(t)
	root := manTree(a)
	plain := &manOptions{App: a, Root: root, Dir: "/plain"}
	zipped := &manOptions{App: a, Root: root, Dir: "/zipped", Gzip: true}
	for _, o := range []*manOptions{plain, zipped} {
		if err := runMan(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	mtimes := map[string]time.Time{}
	for _, d := range []string{"plain", "zipped"} {
		for _, n := range listDir(t, filepath.Join(hostRoot, d)) {
			fi, err := os.Stat(filepath.Join(hostRoot, d, n))
			if err != nil {
				t.Fatal(err)
			}
			mtimes[d+"/"+n] = fi.ModTime()
		}
	}

	out.Reset()
	for _, o := range []*manOptions{plain, zipped} {
		if err := runMan(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, "= man page: unchanged ") {
			t.Errorf("second run changed something: %q", line)
		}
	}
	for p, before := range mtimes {
		fi, err := os.Stat(filepath.Join(hostRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(before) {
			t.Errorf("%s rewritten on the second run", p)
		}
	}

	// The .gz pages are the plain pages, with no name or time in the header.
	for _, n := range listDir(t, filepath.Join(hostRoot, "plain")) {
		want, err := os.ReadFile(filepath.Join(hostRoot, "plain", n))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(hostRoot, "zipped", n+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s.gz does not hold %s", n, n)
		}
		if zr.Name != "" || !zr.ModTime.IsZero() {
			t.Errorf("%s.gz header has name %q, time %v", n, zr.Name, zr.ModTime)
		}
	}
}

func TestManRemovesOnlyStalePages(t *testing.T) {
	a, out, hostRoot := manTestApp(t)
	dir := filepath.Join(hostRoot, "man")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"mosqprov-gone.1", "mosqprov-version.1", "mosquitto.8", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := runMan(context.Background(), &manOptions{App: a, Root: NewRootCmd(a), Dir: "/man", Gzip: true}); err != nil {
		t.Fatal(err)
	}
	got := listDir(t, dir)
	for _, n := range []string{"mosqprov-gone.1", "mosqprov-version.1"} {
		if slices.Contains(got, n) {
			t.Errorf("stale %s left behind: %v", n, got)
		}
	}
	for _, n := range []string{"mosquitto.8", "notes.txt", "mosqprov-version.1.gz"} {
		if !slices.Contains(got, n) {
			t.Errorf("%s missing: %v", n, got)
		}
	}
	if !strings.Contains(out.String(), "- stale man page: removed /man/mosqprov-gone.1") {
		t.Errorf("removal not reported:\n%s", out.String())
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
	a, _, _ := manTestApp(t)
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
	a, _, _ := manTestApp(t)
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
