package cli

import "github.com/spf13/cobra"

// newConfCmd is not built yet; its issue replaces this file.
func newConfCmd(a *App) *cobra.Command { return nil }
