package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// scriptCmds are the testscript commands mosqprov's scripts use besides
// the standard ones, all in one place.
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"corrupt":   cmdCorrupt,
	"exit":      cmdExit,
	"filemtime": cmdFilemtime,
	"fileperm":  cmdFileperm,
	"sametree":  cmdSametree,
	"treestat":  cmdTreestat,
}

// exit N prog args... runs prog like exec and checks its exit code is N,
// so scripts can tell a usage error (3) from a failed check (1).
func cmdExit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exit CODE program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%v", err)
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

// filemtime FILE set stamps FILE with scriptMtime; filemtime FILE same
// checks a command left it alone (! filemtime: rewrote it).
func cmdFilemtime(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || (args[1] != "set" && args[1] != "same") {
		ts.Fatalf("usage: filemtime FILE set|same")
	}
	path := ts.MkAbs(args[0])
	if args[1] == "set" {
		ts.Check(os.Chtimes(path, scriptMtime, scriptMtime))
		return
	}
	fi, err := os.Stat(path)
	ts.Check(err)
	same := fi.ModTime().Equal(scriptMtime)
	if same == neg {
		ts.Fatalf("%s: mtime %v (same as stamped: %v)", args[0], fi.ModTime(), same)
	}
}

// fileperm FILE MODE checks FILE's permission bits (octal).
func cmdFileperm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: fileperm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if uint64(fi.Mode().Perm()) != want {
		ts.Fatalf("%s: mode %04o, want %04o", args[0], fi.Mode().Perm(), want)
	}
}

// treestat DIR FILE writes every path under DIR with its mtime (ns),
// mode and size to FILE, so a script can cmp two of them and prove a
// run wrote nothing, not even the same bytes again.
func cmdTreestat(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: treestat DIR FILE")
	}
	var b strings.Builder
	root := ts.MkAbs(args[0])
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %d %v %d\n", rel, fi.ModTime().UnixNano(), fi.Mode(), fi.Size())
		return nil
	})
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(b.String()), 0o644))
}

// scriptMtime is a fixed past time: `filemtime F set` stamps it, `filemtime F
// same` checks a command didn't rewrite F.
var scriptMtime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// sametree A B checks that two trees hold the same paths with the same
// modes, owners and content (modification times aside).
func cmdSametree(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sametree A B")
	}
	list := func(root string) string {
		var b bytes.Buffer
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			rel, _ := filepath.Rel(root, p)
			fmt.Fprintf(&b, "%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
			if fi.Mode().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				fmt.Fprintf(&b, " %q", data)
			}
			b.WriteByte('\n')
			return nil
		})
		ts.Check(err)
		return b.String()
	}
	a, b := list(ts.MkAbs(args[0])), list(ts.MkAbs(args[1]))
	if a != b {
		ts.Fatalf("%s and %s differ:\n%s\n---\n%s", args[0], args[1], a, b)
	}
}

// corrupt IN flip|cut OUT writes IN with one byte in its middle flipped,
// or without its last 100 bytes, to OUT.
func cmdCorrupt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: corrupt IN flip|cut OUT")
	}
	data, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	switch args[1] {
	case "flip":
		data[len(data)/2] ^= 0x01
	case "cut":
		data = data[:len(data)-100]
	default:
		ts.Fatalf("corrupt: %q is not flip or cut", args[1])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), data, 0o600))
}
