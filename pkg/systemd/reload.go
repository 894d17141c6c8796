package systemd

import (
	"errors"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// ReloadLogWait bounds the wait, after a reload, for the broker to log
// that it read its configuration again (it does at once on SIGHUP; this
// only covers a loaded machine).
const ReloadLogWait = 2 * time.Second

// logMark is where each of the broker's log files ended before a reload.
type logMark map[string]int

// markLogs notes where the broker's log files (its `log_dest file`
// targets; New reads them from its configuration) end now. nil when there
// are none to read: the reload is then not checked.
func (s *Service) markLogs() logMark {
	if s.LogFiles == nil {
		return nil
	}
	var m logMark
	for _, p := range s.LogFiles() {
		if data, err := s.Sys.ReadFile(p); err == nil {
			if m == nil {
				m = logMark{}
			}
			m[p] = len(data)
		}
	}
	return m
}

// configuredLogFiles are the broker's `log_dest file` targets.
func (s *Service) configuredLogFiles() []string {
	b, err := conf.ReadBroker(s.Sys, layout.MosquittoConf)
	if err != nil {
		return nil
	}
	return b.LogFiles
}

// errReloadRefused is a reload the broker took without reading its whole
// configuration again.
var errReloadRefused = errors.New("the broker could not read its configuration again on reload (on SIGHUP it reads every file as the mosquitto user, so each must be readable by that user); it runs on without the files after the error")

// reloadRefused is what the broker said against its configuration when it
// re-read it, from what its log files got after m: on SIGHUP mosquitto
// (2.0 and 2.1) logs "Reloading config.", reads every file again, and a
// file it can't open or parse ends the read with "Error found at
// FILE:LINE." while the broker runs on, with the files after that one not
// read: a password file or ACL that was never re-read, under a reload that
// systemctl calls a success. Checked with the real 2.0.11 and 2.0.21
// (TestApplyInRealSystemd, pkg/plan): a conf.d file the mosquitto user
// can't read.
func (s *Service) reloadRefused(m logMark) []string {
	if m == nil {
		return nil
	}
	// Real time, not s.Sys.Now: a test's clock may stand still.
	for deadline := time.Now().Add(ReloadLogWait); ; time.Sleep(50 * time.Millisecond) {
		seen := false
		var refused []string
		for p, from := range m {
			data, err := s.Sys.ReadFile(p)
			if err != nil {
				continue
			}
			if len(data) < from {
				from = 0 // rotated meanwhile
			}
			reloading := false
			var errs []string
			for _, line := range strings.Split(string(data[from:]), "\n") {
				_, msg, _ := strings.Cut(line, ": ") // after the timestamp
				switch {
				case msg == "Reloading config.":
					seen, reloading, errs = true, true, nil
				case reloading && strings.HasPrefix(msg, "Error found at "):
					refused = append(refused, append(errs, msg)...)
					reloading = false
				case reloading && strings.HasPrefix(msg, "Error"):
					errs = append(errs, msg)
				case reloading && !strings.HasPrefix(msg, "Loading config file "):
					reloading = false // the read is over
				}
			}
		}
		if seen || time.Now().After(deadline) {
			return refused
		}
	}
}
