package cli

import "github.com/spf13/cobra"

// newACLCmd is not built yet; its issue replaces this file.
func newACLCmd(a *App) *cobra.Command { return nil }
