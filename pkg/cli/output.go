package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// Report is what one run prints with -o json: one object per run.
type Report struct {
	Command  string          `json:"command"`
	DryRun   bool            `json:"dry_run"`
	Changed  bool            `json:"changed"`
	Changes  []system.Change `json:"changes"`
	Warnings []string        `json:"warnings,omitempty"`
	Result   any             `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Journal is the unit's last journal lines when a service operation failed.
	Journal []string `json:"journal,omitempty"`
}

var pastTense = map[system.Action]string{
	system.Noop:    "unchanged",
	system.Create:  "created",
	system.Update:  "updated",
	system.Delete:  "removed",
	system.Run:     "ran",
	system.Reload:  "reloaded",
	system.Restart: "restarted",
}

var conditional = map[system.Action]string{
	system.Noop:    "unchanged",
	system.Create:  "would create",
	system.Update:  "would update",
	system.Delete:  "would remove",
	system.Run:     "would run",
	system.Reload:  "would reload",
	system.Restart: "would restart",
}

func formatChange(c system.Change, dryRun bool) string {
	verb := pastTense[c.Action]
	if dryRun {
		verb = conditional[c.Action]
	}
	if verb == "" {
		verb = string(c.Action)
	}
	glyph := c.Action.Glyph()
	if !c.Changed {
		glyph = "="
	}
	line := fmt.Sprintf("%s %s: %s", glyph, c.What, verb)
	if c.Path != "" {
		line += " " + c.Path
	}
	if c.Detail != "" {
		line += " (" + c.Detail + ")"
	}
	return line
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
