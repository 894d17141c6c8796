package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set by the release build: -ldflags "-X github.com/mosqprov/mosqprov/pkg/cli.version=..."
var (
	version = ""
	commit  = ""
	date    = ""
)

// BuildInfo is what `mosqprov version` reports.
type BuildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Go      string `json:"go"`

	Platform string `json:"platform"`
}

// Build returns the version, falling back to what the Go toolchain embedded:
// `go install ...@vX` records the module version, and a `go build` in a git
// checkout records a pseudo-version, the commit and the commit's time (the
// date shown then is the commit's, the closest to a build date it has).
func Build() BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func newVersionCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print mosqprov's version, commit and build date",
		Example: `  mosqprov version
  mosqprov version -o json | jq -r .result.version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b := Build()
			a.Result(b, func(w io.Writer) {
				fmt.Fprintf(w, "mosqprov %s (commit %s, built %s, %s, %s)\n", b.Version, b.Commit, b.Date, b.Go, b.Platform)
			})
			return nil
		},
	}
}
