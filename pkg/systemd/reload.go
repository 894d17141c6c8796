package systemd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mosqprov/mosqprov/pkg/conf"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// ReloadLogWait bounds the wait, after a reload, for the broker to log
// that it read its configuration again (it does at once on SIGHUP; this
// only covers a loaded machine).
const ReloadLogWait = 2 * time.Second

// reloadStill is how long the broker's log must not grow after
// "Reloading config." for its reload's lines to be taken as all of them;
// reloadStillMax bounds that wait for a log that clients keep busy.
const (
	reloadStill    = 200 * time.Millisecond
	reloadStillMax = time.Second
)

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

// errReloadExited is a reload the broker could not take and ended on
// (mosquitto 2.1.2 exits on a password or ACL file it can't open, and on a
// CRL it can't load for a mutual-TLS listener, where 2.0 runs on).
var errReloadExited = errors.New("the broker could not read its configuration again on reload and exited (on SIGHUP it reads every file as the mosquitto user, so each must be readable by that user and valid)")

// reloadFailures are the broker's words for a reload it could not take, as
// the real 2.0.11, 2.0.21 and 2.1.2 log them (TestReloadRefusedRealBroker):
//
//   - a configuration file it can't open or parse ends the read, the broker
//     running on without the files after it (all three):
//     "Error: Unable to open config file F." (2.1 quotes F: 'F'),
//     "Error: Unknown configuration variable "x"." ('x' on 2.1), then
//     "Error found at FILE:LINE." ('FILE:LINE' on 2.1 for an included file);
//   - a password file it can't open: 2.0 runs on refusing every login with
//     "Error: Unable to open pwfile "F"." and "Error opening password file
//     "F".", 2.1.2 logs "password-file: Error: Unable to open pwfile "F"."
//     and "mosquitto version 2.1.2 terminating", and exits with status 13
//     (Restart=on-failure then starts it again: as root under 2.0's unit,
//     as mosquitto under 2.1's, whose User=mosquitto runs it so from the start);
//   - an ACL file it can't open: "Error: Unable to open acl_file "F"." and
//     "Error opening acl file "F"." (all three); 2.0 runs on, 2.1.2 exits
//     with status 13;
//   - a CRL it can't load: "Error: Unable to load certificate revocation
//     file "F". Check crlfile." and "Error when reloading certificate 'C' or
//     key 'K'." (all three); 2.0 runs on, and so does 2.1.2 unless the
//     listener has require_certificate (mutual TLS, the only listeners
//     mosqprov gives a crlfile), where it exits with status 8.
var reloadFailures = []string{
	"Error found at ",
	"Unable to open pwfile ",
	"Error opening password file ",
	"Unable to open acl_file ",
	"Error opening acl file ",
	"Error: Unable to load certificate revocation file ",
	"Error when reloading certificate ",
}

// exitLine is the broker's last line, "mosquitto version 2.1.2 terminating".
func exitLine(msg string) bool {
	return strings.HasPrefix(msg, "mosquitto version ") && strings.HasSuffix(msg, " terminating")
}

// reloadFailed reports whether msg is one of the broker's words for a
// reload it could not take.
func reloadFailed(msg string) bool {
	if exitLine(msg) {
		return true
	}
	for _, f := range reloadFailures {
		if strings.Contains(msg, f) {
			return true
		}
	}
	return false
}

// refusal is what the broker said against its configuration when it
// re-read it, from the lines one reload left in its log (after "Reloading
// config."): its error lines up to the last that says the reload failed
// (reloadFailures, or its exit), each once. Lines after that are the
// broker's ordinary life (clients, which may have errors of their own).
// exited is whether the broker ended on the reload.
func refusal(lines []string) (refused []string, exited bool) {
	last := -1
	for i, msg := range lines {
		if reloadFailed(msg) {
			last = i
		}
	}
	seen := map[string]bool{}
	for _, msg := range lines[:last+1] {
		if seen[msg] || !strings.Contains(msg, "Error") && !exitLine(msg) {
			continue
		}
		seen[msg] = true
		refused = append(refused, msg)
		exited = exited || exitLine(msg)
	}
	return refused, exited
}

// reloadRefused is what the broker said against its configuration when it
// re-read it, from what its log files got after m: on SIGHUP mosquitto
// (2.0 and 2.1) logs "Reloading config.", reads every file again, and logs
// why a file could not be taken (reloadFailures): a password file or ACL
// that was never re-read, under a reload that systemctl calls a success,
// or (2.1) a broker that exited. nil when the reload was taken. The error
// wraps errReloadExited when the broker ended on it, errReloadRefused
// otherwise.
func (s *Service) reloadRefused(m logMark) error {
	if m == nil {
		return nil
	}
	// Real time, not s.Sys.Now: a test's clock may stand still.
	size, grew := -1, time.Now()
	var seenAt time.Time
	for deadline := time.Now().Add(ReloadLogWait); ; time.Sleep(50 * time.Millisecond) {
		seen, exited, total := false, false, 0
		var refused []string
		for p, from := range m {
			data, err := s.Sys.ReadFile(p)
			if err != nil {
				continue
			}
			total += len(data)
			if len(data) < from {
				from = 0 // rotated meanwhile
			}
			var reload []string
			in := false
			end := func() {
				if in {
					r, x := refusal(reload)
					refused, exited = append(refused, r...), exited || x
				}
				reload, in = nil, false
			}
			for _, line := range strings.Split(string(data[from:]), "\n") {
				_, msg, _ := strings.Cut(line, ": ") // after the timestamp
				switch {
				case msg == "Reloading config.":
					end()
					seen, in = true, true
				case strings.HasPrefix(msg, "mosquitto version ") && strings.HasSuffix(msg, " starting"):
					end() // a new broker (systemd started it again)
				case in:
					reload = append(reload, msg)
				}
			}
			end()
		}
		now := time.Now()
		if total != size {
			size, grew = total, now
		}
		if seen && seenAt.IsZero() {
			seenAt = now
		}
		// The broker writes a reload's lines one at a time, and under load
		// they may come apart (its errors after "Reloading config.", 2.1's
		// exit after its errors): its words are whole once it has exited
		// or its log has been still a moment.
		whole := seen && (exited || now.Sub(grew) >= reloadStill || now.Sub(seenAt) >= reloadStillMax)
		if whole || !seen && now.After(deadline) {
			switch {
			case len(refused) == 0:
				return nil
			case exited:
				return fmt.Errorf("%w: %s", errReloadExited, strings.Join(refused, " "))
			}
			return fmt.Errorf("%w: %s", errReloadRefused, strings.Join(refused, " "))
		}
	}
}
