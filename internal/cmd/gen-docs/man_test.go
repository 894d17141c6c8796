package main

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

	"github.com/mosqprov/mosqprov/pkg/cli"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// manTestApp is an App on a temporary root whose output is captured.
func manTestApp(t *testing.T) (*cli.App, *bytes.Buffer, string) {
	t.Helper()
	root := t.TempDir()
	var out bytes.Buffer
	a := cli.NewApp(&cli.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	a.Sys = system.NewReal(root, system.WithRunner(&system.Recorder{}))
	return a, &out, root
}

// manTree is the real command tree, with the man command as this program
// adds it, plus commands this test invents, so the test fails if the
// generator only knows a fixed list of commands.
func manTree(a *cli.App) *cobra.Command {
	root := cli.NewRootCmd(a, newManCmd)
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
	for _, s := range []string{".SH EXIT STATUS", ".B 130", cli.PasswordEnv, cli.P12PasswordEnv, "/etc/mosqprov/ca/ca.key"} {
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
	if err := runMan(context.Background(), &manOptions{App: a, Root: cli.NewRootCmd(a, newManCmd), Dir: "/man", Gzip: true}); err != nil {
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

// TestMissingDirIsAUsageError: without --dir nothing is written and the exit
// code is the usage error's, as every mosqprov command's bad flags are.
func TestMissingDirIsAUsageError(t *testing.T) {
	a, out, hostRoot := manTestApp(t)
	if code := cli.Run(context.Background(), a, manArgs(nil), newManCmd); code != cli.ExitUsage {
		t.Errorf("exit %d, want %d (usage); output:\n%s", code, cli.ExitUsage, out)
	}
	if !strings.Contains(out.String(), "mosqprov: --dir: is required") {
		t.Errorf("output lacks the --dir error:\n%s", out)
	}
	if got := listDir(t, hostRoot); len(got) != 0 {
		t.Errorf("wrote %v", got)
	}
}

// TestMosqprovDoesNotLinkTheRenderers holds the reason this program exists:
// mosqprov's binary must not import cobra/doc and the Markdown renderers
// behind it, whose initialisation every run of mosqprov would pay.
func TestMosqprovDoesNotLinkTheRenderers(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/mosqprov/mosqprov/cmd/mosqprov").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/spf13/cobra") {
		t.Fatalf("go list -deps gave no cobra; is it listing mosqprov?\n%s", out)
	}
	for _, d := range deps {
		for _, bad := range []string{"github.com/spf13/cobra/doc", "github.com/cpuguy83/go-md2man", "github.com/russross/blackfriday"} {
			if strings.HasPrefix(d, bad) {
				t.Errorf("mosqprov links %s", d)
			}
		}
	}
}
