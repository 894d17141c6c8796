// Package system is mosqprov's only door to the host: files (written
// atomically, only when they differ), owners, locks and commands.
//
// Paths given to a System are target-system paths ("/etc/mosquitto/passwd").
// A System built with a root other than "/" resolves absolute paths under that
// root, so tests and image builders never touch the host; relative paths are
// the caller's own and stay relative to the working directory.
package system

import (
	"context"
	"io"
	"io/fs"
	"net"
	"time"
)

// System is implemented by Real (reads and writes the host), DryRun (reads the
// host, records writes) and, in tests, Real on a temporary root.
type System interface {
	// Root is the folder target paths are resolved under ("/" on a live host).
	Root() string
	// HostPath is where path really lives on this machine (Root joined with path).
	HostPath(path string) string
	// IsDryRun reports whether writes and mutating commands are only recorded.
	IsDryRun() bool

	// ReadFile returns path's bytes. Real keeps them to compare a later
	// write of the same file with (each file is read once, readonce.go):
	// callers never write into them.
	ReadFile(path string) ([]byte, error)
	// Stat does not follow a final symlink.
	Stat(path string) (FileInfo, error)
	ReadDir(path string) ([]fs.DirEntry, error)

	// WriteFile makes path hold data with attr, atomically, and only when the
	// bytes, owner or mode differ. It reports what it did (Noop, Create, Update).
	WriteFile(path string, data []byte, attr Attr) (Action, error)
	// EnsureDir creates path (and missing parents with the same attr) or fixes
	// its owner and mode.
	EnsureDir(path string, attr Attr) (Action, error)
	// Open opens path for a streamed read, with ReadFile's rules; WriteFrom
	// writes a file streamed from content (stream.go). An edit of a large
	// file uses them so it never holds the file, or its rewrite, in memory.
	Open(path string) (Source, error)
	WriteFrom(path string, size int64, content func(w io.Writer) error, attr Attr) (Action, error)
	// Remove deletes a file; Noop when it doesn't exist.
	Remove(path string) (Action, error)

	// Lock takes an exclusive advisory lock that serialises writers of path
	// (it locks path's folder, so no lock file is left behind).
	Lock(path string) (unlock func(), err error)

	LookupUser(name string) (Account, error)
	LookupGroup(name string) (int, error)
	// CurrentAccount is the process's own uid and gid.
	CurrentAccount() Account

	// Run runs a command. DryRun runs only commands marked ReadOnly.
	Run(ctx context.Context, cmd Cmd) (Output, error)

	// Changes lists the files this System changed (or, in dry-run, would
	// change), each with its state before the first change, in order.
	Changes() []FileChange

	Now() time.Time

	// Hostname and Addrs are the target host's facts: its name and the
	// addresses clients reach it on (none under a --root).
	Hostname() (string, error)
	Addrs() ([]net.IP, error)

	// SetLog makes the System describe every write, folder, lock and
	// command through logf (--verbose); never contents or environments.
	SetLog(logf func(format string, args ...any))

	// real is the Real a System reads through: the interface is sealed, so
	// a DryRun can be made of any System (NewDryRun).
	real() *Real
}

// Attr is the owner and mode a file or folder must have. Empty User or Group
// means "whoever the process is" for a new file and "leave it" for an existing one.
type Attr struct {
	Mode  fs.FileMode
	User  string
	Group string
}

// Account is a resolved user.
type Account struct {
	Name string
	UID  int
	GID  int
}

// FileInfo is what Stat reports, with the owner resolved.
type FileInfo struct {
	Path    string
	Mode    fs.FileMode // permission bits only
	IsDir   bool
	Symlink bool
	UID     int
	GID     int
	Size    int64
	ModTime time.Time
}

// Action is what a step did or would do.
type Action string

const (
	Noop    Action = "noop"
	Create  Action = "create"
	Update  Action = "update"
	Delete  Action = "delete"
	Run     Action = "run"
	Reload  Action = "reload"
	Restart Action = "restart"
)

// Glyph is the one-character mark plan output uses for the action.
func (a Action) Glyph() string {
	switch a {
	case Create:
		return "+"
	case Update, Reload, Restart, Run:
		return "~"
	case Delete:
		return "-"
	}
	return " "
}

// Changed reports whether the action changes anything.
func (a Action) Changed() bool { return a != Noop && a != "" }

// Change is one line of a command's report: what it touched and what it did.
type Change struct {
	What    string `json:"what"`
	Path    string `json:"path,omitempty"`
	Action  Action `json:"action"`
	Changed bool   `json:"changed"`
	Detail  string `json:"detail,omitempty"`
}

// NewChange fills Changed from the action.
func NewChange(what, path string, action Action, detail string) Change {
	return Change{What: what, Path: path, Action: action, Changed: action.Changed(), Detail: detail}
}

// FileChange is a file this System changed, with its state before the change.
type FileChange struct {
	Path   string
	Action Action
	Before *Snapshot // nil when the file did not exist
	After  []byte    // desired content (nil for Delete and a streamed write: Content)
	after  *keptFile // the file a streamed write made
}

// Snapshot is a file's content and attributes at a point in time.
type Snapshot struct {
	Data []byte
	Mode fs.FileMode
	UID  int
	GID  int
	// kept holds a streamed file's content instead of Data (Content).
	kept *keptFile
}

// Cmd is a command to run.
type Cmd struct {
	Name string
	Args []string
	// Env is added to the process environment (KEY=VALUE).
	Env []string
	// ReadOnly marks a query (dpkg-query, systemctl is-active) that dry-run
	// still runs for real.
	ReadOnly bool
	// Stream, when set, receives the command's output as it runs (apt progress).
	Stream interface{ Write([]byte) (int, error) }
}

// String is the command line as a person would type it.
func (c Cmd) String() string {
	s := c.Name
	for _, a := range c.Args {
		s += " " + ShellQuote(a)
	}
	return s
}

// Output is what a finished command printed.
type Output struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}
