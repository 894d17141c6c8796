package cli

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// TestCommandTable holds the table rootFor picks from to the commands: each
// entry builds the command it is named after, with no alias a command line
// could name it by instead.
func TestCommandTable(t *testing.T) {
	a, _, _ := testApp(t, "")
	var names []string
	for _, c := range commands {
		cmd := c.build(a)
		if cmd.Name() != c.name || len(cmd.Aliases) > 0 {
			t.Errorf("commands names %q for a command named %q (aliases %v)", c.name, cmd.Name(), cmd.Aliases)
		}
		names = append(names, c.name)
	}
	root := NewRootCmd(a)
	for _, c := range root.Commands() {
		if !slices.Contains(names, c.Name()) {
			t.Errorf("the tree has %q, the table doesn't", c.Name())
		}
	}
}

func TestCommandWord(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "x"}, "user"},
		{[]string{"--root", "/mnt", "user", "add"}, "user"},
		{[]string{"--root=/mnt", "-o", "json", "-v", "--dry-run", "cert", "ca"}, "cert"},
		{[]string{"-ojson", "--output=json", "--verbose", "version"}, "version"},
		{[]string{"--output", "json", "plan"}, "plan"},
		// -o takes the next word, whatever it is: cobra reads "add" as the command.
		{[]string{"-o", "user", "add"}, "add"},
		{[]string{"--root", "--", "user"}, "user"},
		// Flags rootFor doesn't read leave the choice to the whole tree.
		{[]string{"-h", "user"}, ""},
		{[]string{"--help"}, ""},
		{[]string{"-vo", "json", "user"}, ""},
		{[]string{"--dry-run=true", "user"}, ""},
		{[]string{"--", "user"}, ""},
		{[]string{"--root"}, ""},
		{nil, ""},
	} {
		if got := commandWord(tc.args); got != tc.want {
			t.Errorf("commandWord(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestOneCommandTreeRunsAsTheWholeTree runs command lines on the tree
// rootFor builds for them and on the whole tree: the same exit code, the
// same output, byte for byte. Help, usage errors and json errors of every
// command are where a missing sibling would show.
func TestOneCommandTreeRunsAsTheWholeTree(t *testing.T) {
	root := t.TempDir()
	var lines [][]string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		with := func(extra ...string) []string { return append(slices.Clone(path), extra...) }
		lines = append(lines, with("--help"), with("--bogus"), append([]string{"-o", "json"}, with("--bogus")...),
			append([]string{"--root", root}, with("-h")...))
		if c.HasSubCommands() {
			lines = append(lines, with(), with("nope"), append([]string{"-ojson"}, with()...), with("help"))
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	a, _, _ := testApp(t, "")
	for _, c := range NewRootCmd(a).Commands() {
		walk(c)
	}
	// And some that run, on an empty --root.
	lines = append(lines,
		[]string{"version"}, []string{"-o", "json", "version"},
		[]string{"--root", root, "user", "list"}, []string{"--root", root, "-o", "json", "acl", "list"},
		[]string{"--root", root, "--dry-run", "user", "rm", "nobody"},
		[]string{"--root", "", "user", "list"}, []string{"-o", "yaml", "version"},
		[]string{"--root", root, "user", "add", "alice", "--password-stdin", "--iterations", "101"})

	// Each run starts on the same empty --root: the one that writes
	// (user add) writes the same for both.
	newApp := func() (*App, *bytes.Buffer, *bytes.Buffer) {
		if err := os.RemoveAll(root); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		a := NewApp(&IOStreams{In: strings.NewReader("pw\n"), Out: &out, ErrOut: &errOut})
		a.NewSystem = func(g Globals) system.System {
			return system.NewReal(g.Root, system.WithRunner(&system.Recorder{}))
		}
		return a, &out, &errOut
	}
	ctx := context.Background()
	for _, args := range lines {
		fa, fout, ferr := newApp()
		tree := rootFor(fa, args, nil)
		if n := len(tree.Commands()); n != 1 {
			t.Errorf("%q: rootFor built %d commands, want the one named", args, n)
		}
		fcode := run(ctx, fa, args, tree)
		wa, wout, werr := newApp()
		wcode := run(ctx, wa, args, NewRootCmd(wa))
		if fcode != wcode || fout.String() != wout.String() || ferr.String() != werr.String() {
			t.Errorf("%q: one command's tree gives exit %d\n%s%s\nthe whole tree exit %d\n%s%s",
				args, fcode, fout, ferr, wcode, wout, werr)
		}
	}
	if len(lines) < 200 {
		t.Errorf("only %d command lines; is the walk broken?", len(lines))
	}
}
