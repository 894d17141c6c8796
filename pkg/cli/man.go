package cli

import "github.com/spf13/cobra"

// newManCmd is not built yet; its issue replaces this file.
func newManCmd(a *App) *cobra.Command { return nil }
