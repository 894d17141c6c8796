package cli

import "github.com/spf13/cobra"

// newDoctorCmd is not built yet; its issue replaces this file.
func newDoctorCmd(a *App) *cobra.Command { return nil }
