package system

import (
	"errors"
	"fmt"
)

// Restore puts every file in changes back as it was before the first change,
// newest first. It is how a failed restart is rolled back.
func Restore(sys System, changes []FileChange) error {
	var errs []error
	done := map[string]bool{}
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if done[c.Path] {
			continue
		}
		done[c.Path] = true
		if c.Before == nil {
			if _, err := sys.Remove(c.Path); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := restoreSnapshot(sys, c.Path, c.Before); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", c.Path, err))
		}
	}
	return errors.Join(errs...)
}

func restoreSnapshot(sys System, path string, s *Snapshot) error {
	if sys.IsDryRun() {
		return nil // a dry run changed nothing
	}
	if s.kept != nil {
		return sys.real().restoreStream(path, s)
	}
	return sys.real().write(path, s.Data, s.Mode, s.UID, s.GID)
}
