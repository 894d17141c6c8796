package cli

import "github.com/spf13/cobra"

// newApplyCmd is not built yet; its issue replaces this file.
func newApplyCmd(a *App) *cobra.Command { return nil }
