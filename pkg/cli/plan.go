package cli

import "github.com/spf13/cobra"

// newPlanCmd is not built yet; its issue replaces this file.
func newPlanCmd(a *App) *cobra.Command { return nil }
