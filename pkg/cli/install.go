package cli

import "github.com/spf13/cobra"

// newInstallCmd is not built yet; its issue replaces this file.
func newInstallCmd(a *App) *cobra.Command { return nil }
