package system

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// ErrNoSuchUser is returned by LookupUser and LookupGroup.
type ErrNoSuchUser struct {
	Name string
	// Where is the file looked in: the target's /etc/passwd or /etc/group
	// under a --root, empty for the host's own accounts.
	Where string
}

func (e ErrNoSuchUser) Error() string {
	if e.Where != "" {
		return fmt.Sprintf("no user or group %q in %s", e.Name, e.Where)
	}
	return fmt.Sprintf("no user or group %q on this system", e.Name)
}

// LookupUser reads the target's /etc/passwd under a root other than "/" (an
// image being built has its own accounts), and the host's otherwise. An
// account found is kept for the run: accounts are created during a run
// (apt's postinst adds the broker's user) but not changed or removed, and
// one command looks the same account up several times.
func (s *Real) LookupUser(name string) (Account, error) {
	if a, ok := s.found("user", name); ok {
		return a, nil
	}
	a, err := s.lookupUser(name)
	if err == nil {
		s.keepFound("user", name, a)
	}
	return a, err
}

// found is an account (or, for a group, its id in GID) looked up before.
func (s *Real) found(kind, name string) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[kind+":"+name]
	return a, ok
}

func (s *Real) keepFound(kind, name string, a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts == nil {
		s.accounts = map[string]Account{}
	}
	s.accounts[kind+":"+name] = a
}

func (s *Real) lookupUser(name string) (Account, error) {
	if s.root != "/" {
		data, err := s.ReadFile("/etc/passwd")
		var le *LinkError
		if errors.As(err, &le) {
			// Not the host's accounts instead: the image's are a link away.
			return Account{}, fmt.Errorf("look up %q: %w", name, err)
		}
		if err == nil {
			f, ok := findEntry(data, name)
			if !ok || len(f) < 4 {
				return Account{}, ErrNoSuchUser{Name: name, Where: s.HostPath("/etc/passwd")}
			}
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				return Account{}, fmt.Errorf("bad entry for %q in %s", name, s.HostPath("/etc/passwd"))
			}
			return Account{Name: name, UID: uid, GID: gid}, nil
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, ErrNoSuchUser{Name: name}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return Account{Name: name, UID: uid, GID: gid}, nil
}

// LookupGroup is LookupUser for a group: its id.
func (s *Real) LookupGroup(name string) (int, error) {
	if a, ok := s.found("group", name); ok {
		return a.GID, nil
	}
	gid, err := s.lookupGroup(name)
	if err == nil {
		s.keepFound("group", name, Account{Name: name, GID: gid})
	}
	return gid, err
}

func (s *Real) lookupGroup(name string) (int, error) {
	if s.root != "/" {
		data, err := s.ReadFile("/etc/group")
		var le *LinkError
		if errors.As(err, &le) {
			// Not the host's accounts instead: the image's are a link away.
			return 0, fmt.Errorf("look up %q: %w", name, err)
		}
		if err == nil {
			f, ok := findEntry(data, name)
			if !ok || len(f) < 3 {
				return 0, ErrNoSuchUser{Name: name, Where: s.HostPath("/etc/group")}
			}
			gid, err := strconv.Atoi(f[2])
			if err != nil {
				return 0, fmt.Errorf("bad entry for %q in %s", name, s.HostPath("/etc/group"))
			}
			return gid, nil
		}
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, ErrNoSuchUser{Name: name}
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid, nil
}

func (s *Real) CurrentAccount() Account {
	name := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return Account{Name: name, UID: os.Getuid(), GID: os.Getgid()}
}

func findEntry(data []byte, name string) ([]string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) > 0 && f[0] == name {
			return f, true
		}
	}
	return nil, false
}
