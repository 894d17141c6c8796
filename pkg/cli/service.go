package cli

import "github.com/spf13/cobra"

// newServiceCmd is not built yet; its issue replaces this file.
func newServiceCmd(a *App) *cobra.Command { return nil }
