package cli

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	// sametree A B checks that two trees hold the same paths with the same
	// modes, owners and content (modification times aside).
	scriptCmds["sametree"] = func(ts *testscript.TestScript, neg bool, args []string) {
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
	scriptCmds["corrupt"] = func(ts *testscript.TestScript, neg bool, args []string) {
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
}
