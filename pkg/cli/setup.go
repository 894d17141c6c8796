package cli

import "github.com/spf13/cobra"

// newSetupCmd is not built yet; its issue replaces this file.
func newSetupCmd(a *App) *cobra.Command { return nil }
