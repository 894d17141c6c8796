// Command gen-docs writes mosqprov's man pages, one per visible command, from
// the command tree in pkg/cli: packaging runs it (scripts/release-assets.sh,
// GoReleaser's before hook) with the release's -X stamps, so the pages'
// footer names the version and is dated by the commit.
//
//	go run ./internal/cmd/gen-docs --dir gen/man --gzip
//
// It is a program of its own, as gh's cmd/gen-docs is, because the renderers
// behind cobra/doc (go-md2man, blackfriday) would otherwise be linked into
// mosqprov and their package initialisation (tables, regexps: about a tenth of
// the process start's page faults) paid by every run, for a command only
// packaging uses. It runs mosqprov's tree with one command added, the hidden
// `man`, and only that command: the same flags (--dir, --gzip, -o json,
// --root), output and exit codes as `mosqprov man` had.
package main

import (
	"os"

	"github.com/mosqprov/mosqprov/pkg/cli"
)

func main() {
	os.Exit(cli.MainWith(manArgs(os.Args[1:]), newManCmd))
}

// manArgs runs the man command whatever the arguments, so no other of
// mosqprov's commands can be reached through this program.
func manArgs(args []string) []string {
	return append([]string{"man"}, args...)
}
