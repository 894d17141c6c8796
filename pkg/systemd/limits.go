package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// DefaultNOFILE is the open-file limit the mosquitto unit runs with: Debian's
// unit sets no LimitNOFILE, so it gets systemd's DefaultLimitNOFILE, whose
// soft limit is 1024 (systemd 240 and later; measured in the bookworm
// container: "Max open files 1024 524288" in /proc/MAINPID/limits), and
// mosquitto 2.0 does not raise it itself.
const DefaultNOFILE = 1024

// NOFILEReserve is what the broker needs besides its clients' sockets:
// listening sockets, the log, the database, the password and ACL files,
// libc and TLS.
const NOFILEReserve = 64

// limitsHeader marks the drop-in as mosqprov's.
const limitsHeader = "# Managed by mosqprov: hand edits are overwritten."

// NOFILEFor is the open-file limit listeners with these max_connections
// need, or 0 when systemd's default is enough (no drop-in). Listeners
// without a limit (0) can't be counted and add nothing.
func NOFILEFor(maxConnections []int) int {
	n := NOFILEReserve
	for _, c := range maxConnections {
		if c > 0 {
			n += c
		}
	}
	if n <= DefaultNOFILE {
		return 0
	}
	return n
}

// LimitsFile is the drop-in's content for limit.
func LimitsFile(limit int) []byte {
	return fmt.Appendf(nil, `%s
# The listeners' max_connections need more open files than systemd's default
# (%d): each client is one. From broker.yaml; mosqprov removes this file
# when they no longer do.
[Service]
LimitNOFILE=%d
`, limitsHeader, DefaultNOFILE, limit)
}

// EnsureLimits converges the unit's open-file drop-in (layout.LimitsDropIn)
// to limit (0: no drop-in; a file that isn't mosqprov's is left alone). A
// change runs `systemctl daemon-reload`, so systemd sees it, and needs a
// restart: a process's limits are set when it starts. Under --root, on a
// DryRun or without systemd there is no daemon to reload and the change
// says so.
func EnsureLimits(ctx context.Context, sys system.System, limit int, booted bool) (system.Result, error) {
	return ensureLimitsAt(ctx, sys, layout.LimitsDropIn, limit, booted)
}

// ensureLimitsAt is EnsureLimits for the drop-in at p (tests put it in a
// temporary folder on the host's root, where daemon-reload runs).
func ensureLimitsAt(ctx context.Context, sys system.System, p string, limit int, booted bool) (system.Result, error) {
	var res system.Result
	old, err := sys.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", p, err)
	}
	exists := err == nil
	var action system.Action
	detail := ""
	switch {
	case limit == 0 && !exists:
		return res, nil
	case limit == 0 && !bytes.HasPrefix(old, []byte(limitsHeader+"\n")):
		res.Warn("%s is not mosqprov's: left as it is", p)
		return res, nil
	case limit == 0:
		if action, err = sys.Remove(p); err != nil {
			return res, err
		}
		detail = "max_connections no longer need it"
	default:
		if _, err := sys.EnsureDir(path.Dir(p), system.Attr{Mode: 0o755}); err != nil {
			return res, err
		}
		if action, err = sys.WriteFile(p, LimitsFile(limit), layout.Public); err != nil {
			return res, fmt.Errorf("write %s: %w", p, err)
		}
		detail = fmt.Sprintf("LimitNOFILE=%d for the listeners' max_connections", limit)
	}
	if action.Changed() {
		res.Needs(system.NeedRestart)
		switch {
		case sys.Root() != "/" || !booted:
			detail += "; no systemd here to reload"
		case sys.IsDryRun():
			detail += "; then systemctl daemon-reload"
		default:
			if _, err := sys.Run(ctx, system.Cmd{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
				return res, fmt.Errorf("systemctl daemon-reload after writing %s: %w", p, err)
			}
			detail += "; systemctl daemon-reload done"
		}
	}
	res.Add(system.NewChange("unit open-file limit", p, action, detail))
	return res, nil
}
