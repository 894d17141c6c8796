package cli

import "github.com/spf13/cobra"

// newCertCmd is not built yet; its issue replaces this file.
func newCertCmd(a *App) *cobra.Command { return nil }
