package cli

import "github.com/spf13/cobra"

// newUserCmd is not built yet; its issue replaces this file.
func newUserCmd(a *App) *cobra.Command { return nil }
