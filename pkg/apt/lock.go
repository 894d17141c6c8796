package apt

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// LockFiles are the locks apt and dpkg take (apt 2.x, dpkg 1.20+): the
// frontend lock apt and unattended-upgrades hold for a whole run, dpkg's own
// lock, and the lists lock apt-get update holds.
var LockFiles = []string{"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock"}

// Holder is a process holding a package manager lock.
type Holder struct {
	Path string
	PID  int    // -1 when the kernel doesn't say (an open-file-description lock)
	Name string // its command name, from /proc
}

func (h Holder) String() string {
	switch {
	case h.PID <= 0:
		return "another process"
	case h.Name != "":
		return fmt.Sprintf("process %d (%s)", h.PID, h.Name)
	}
	return fmt.Sprintf("process %d", h.PID)
}

// ProbeLocks reports the first of LockFiles on sys that another process
// holds. apt and dpkg lock with fcntl(F_SETLK); F_GETLK asks the kernel who
// would block a write lock without taking one, so probing disturbs nothing
// (and works in a dry run).
func ProbeLocks(sys system.System) (Holder, bool) {
	for _, p := range LockFiles {
		if h, held := probe(sys, p); held {
			h.Path = p
			return h, true
		}
	}
	return Holder{}, false
}

func probe(sys system.System, p string) (Holder, bool) {
	// Opened inside --root and never through a link, as every system path.
	f, err := system.OpenRead(sys, p)
	if err != nil {
		return Holder{}, false // no lock file: nobody holds it
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
		return Holder{}, false
	}
	h := Holder{PID: int(lk.Pid)}
	if h.PID > 0 {
		if comm, err := os.ReadFile("/proc/" + strconv.Itoa(h.PID) + "/comm"); err == nil {
			h.Name = strings.TrimSpace(string(comm))
		}
	}
	return h, true
}
