package bridge

import (
	"regexp"
	"strings"
	"sync"
)

// Cause is why a bridge did not connect, as the broker's log tells it.
type Cause string

const (
	CauseDNS      Cause = "name-resolution"
	CauseRefused  Cause = "connection-refused"
	CauseTLSChain Cause = "tls-chain"
	CauseTLSName  Cause = "tls-name"
	// CauseTLSVerify is a certificate that failed verification, chain or
	// name: mosquitto 2.1 logs "certificate verify failed" for both, where
	// 2.0 adds "host name verification failed" for a name.
	CauseTLSVerify   Cause = "tls-verify"
	CauseCredentials Cause = "credentials"
	CauseOther       Cause = "other"
)

// Diagnosis is one bridge's last failed attempt to connect.
type Diagnosis struct {
	Bridge string `json:"bridge"`
	Cause  Cause  `json:"cause"`
	// Address is the address tried ("host:port" as the broker writes it).
	Address string `json:"address"`
	// Lines are the log lines the cause was read from.
	Lines []string `json:"lines"`
}

// What each cause means, in a sentence.
func (c Cause) Explain() string {
	switch c {
	case CauseDNS:
		return "the remote's host name does not resolve"
	case CauseRefused:
		return "nothing accepts connections at the remote's address (wrong port, broker down, or a firewall)"
	case CauseTLSChain:
		return "the remote's certificate does not chain to the CA the bridge trusts"
	case CauseTLSName:
		return "the remote's certificate does not name the address the bridge connects to"
	case CauseTLSVerify:
		return "the remote's certificate failed verification: it does not chain to the CA the bridge trusts, or does not name the address the bridge connects to (mosquitto 2.1's log does not say which)"
	case CauseCredentials:
		return "the remote broker refused the bridge's user name, password or client certificate"
	}
	return "the connection failed"
}

// Fix says what to do about the cause.
func (c Cause) Fix(name string) string {
	switch c {
	case CauseDNS:
		return "check the address (getent hosts HOST) and the Pi's DNS; an IP address avoids DNS"
	case CauseRefused:
		return "check the port and that the remote broker runs (nc -vz HOST PORT)"
	case CauseTLSChain:
		return "give the remote's CA: tls.ca_file (for a mosqprov remote its /etc/mosquitto/certs/ca.crt) or tls.system_ca for a public certificate"
	case CauseTLSName:
		return "connect with a name (or IP) the remote's certificate holds, or reissue the remote's certificate with it (mosqprov cert server --name ... on a mosqprov remote)"
	case CauseTLSVerify:
		return "see which with `openssl s_client -connect HOST:PORT -CAfile CA -verify_hostname HOST` (the bridge's address and CA file); then give the remote's CA (tls.ca_file, or tls.system_ca for a public certificate) or connect with a name the remote's certificate holds"
	case CauseCredentials:
		return "check the username and password (or the client certificate) of bridge " + name + " and the remote's users; then apply again"
	}
	return "see the broker's log"
}

var (
	stepLine = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`Connecting bridge \(step ([12])\) (\S+) \(([^)]*)\)`)
	})
	// "Client local.ID disconnected: ...", "Client local.ID closed its
	// connection.", "Bad socket read/write on client local.ID: ...".
	clientOf = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[Cc]lient local\.([^\s:]+)`) })
	// "mosquitto version 2.1.2 starting", at each start of the broker.
	versionLine = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`mosquitto version (\d+)\.(\d+)\S* (starting|running)`)
	})
	majorMinor = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:\d+:)?(\d+)\.(\d+)`) })
)

// namesHostFailure reports whether mosquitto version v ("2.0.11",
// "2.1.2-1") logs "host name verification failed" when a bridge's remote
// certificate does not name its address: 2.0 does, 2.1.2 does not
// (TestDiagnoseRealBroker on each). An unknown version reads as 2.0.
func namesHostFailure(major, minor string) bool {
	return major == "" || major < "2" || major == "2" && minor == "0"
}

// Diagnose reads the broker's log (oldest line first) and tells, for each
// bridge whose last attempt to connect failed, why. mosquitto 2.0's log
// at its default levels names the bridge in "Connecting bridge (step N)
// NAME" and "Client local.CLIENT_ID ..." lines, and writes the error in
// between without a name (checked with 2.0.11): a line is the cause of the
// bridge whose attempt is the open one. A bridge that connects logs
// nothing more at the default levels, so an attempt with no error after it
// counts as connected.
//
// broker is the installed broker's version ("2.1.2"), for a log that no
// longer holds the broker's start line, which says which version wrote it:
// 2.1 does not say whether a certificate failed on its chain or on its
// name (CauseTLSVerify), 2.0 does.
func Diagnose(bridges []Bridge, log []string, broker string) []Diagnosis {
	var major, minor string
	if m := majorMinor().FindStringSubmatch(broker); m != nil {
		major, minor = m[1], m[2]
	}
	byClient := map[string]string{}
	known := map[string]bool{}
	for _, b := range bridges {
		byClient[b.ClientID] = b.Name
		known[b.Name] = true
	}
	type attempt struct {
		addr  string
		step  int
		cause Cause
		lines []string
		// prev is the attempt before, when it failed; end is the index of
		// the attempt's last step line.
		prev *attempt
		end  int
	}
	last := map[string]*attempt{}
	var unnamed []int // lines of socket errors that name no bridge
	unnamedAfter := func(i int) int {
		for _, j := range unnamed {
			if j > i {
				return j
			}
		}
		return -1
	}
	resolving := ""      // the bridge whose step 1 has no step 2 yet
	var pending []string // unnamed error lines waiting for a "Client local.X" line
	pendingCause := Cause("")
	for i, line := range log {
		if m := versionLine().FindStringSubmatch(line); m != nil {
			major, minor = m[1], m[2]
			continue
		}
		if m := stepLine().FindStringSubmatch(line); m != nil && known[m[2]] {
			name := m[2]
			if m[1] == "1" {
				a := &attempt{addr: m[3], step: 1, end: i}
				if old := last[name]; old != nil && old.step == 2 && old.cause == "" {
					// It reached the remote's address and is trying again:
					// refused when an unnamed socket error came since.
					old.cause, old.lines = CauseOther, []string{log[old.end]}
					if j := unnamedAfter(old.end); j >= 0 {
						old.cause, old.lines = CauseRefused, []string{log[old.end], log[j]}
					}
				}
				if old := last[name]; old != nil && old.step == 1 && old.cause == "" {
					// Step 2 follows the name's resolution: an attempt that
					// never got there could not resolve it. (2.0.11 writes
					// its "Error resolving bridge address" warning to the log
					// file only when it flushes, often at exit.)
					old.cause, old.lines = CauseDNS, []string{log[old.end]}
				}
				if old := last[name]; old != nil && old.cause != "" {
					a.prev = old
				} else if old != nil {
					a.prev = old.prev
				}
				last[name] = a
				resolving = name
			} else {
				if a := last[name]; a != nil {
					a.step, a.end = 2, i
				}
				if resolving == name {
					resolving = ""
				}
			}
			continue
		}
		cause := Cause("")
		switch {
		case strings.Contains(line, "Error resolving bridge address"):
			if a := last[resolving]; resolving != "" && a != nil {
				a.cause, a.lines = CauseDNS, []string{line}
			}
			continue
		case strings.Contains(line, "Error creating bridge") || strings.Contains(line, "Connection refused"):
			// Written later, when the socket fails, after other bridges'
			// lines: it belongs to a bridge that then tries again.
			unnamed = append(unnamed, i)
			continue
		case strings.Contains(line, "host name verification failed"):
			cause = CauseTLSName
		case strings.Contains(line, "certificate verify failed") || strings.Contains(line, "OpenSSL Error"):
			cause = CauseTLSChain
			if !namesHostFailure(major, minor) {
				cause = CauseTLSVerify
			}
		case strings.Contains(line, "Connection Refused: not authorised"), strings.Contains(line, "bad user name or password"),
			strings.Contains(line, "Connection Refused: bad"), strings.Contains(line, "not authorized"):
			cause = CauseCredentials
		}
		if cause != "" {
			// "host name verification failed" comes with a "certificate
			// verify failed" line: the name is the cause.
			if pendingCause != CauseTLSName {
				pendingCause = cause
			}
			pending = append(pending, line)
			continue
		}
		if m := clientOf().FindStringSubmatch(line); m != nil {
			if name, ok := byClient[m[1]]; ok && pendingCause != "" {
				if a := last[name]; a != nil {
					a.cause, a.lines = pendingCause, append(append([]string(nil), pending...), line)
				}
			}
			pending, pendingCause = nil, ""
		}
	}
	var out []Diagnosis
	for _, b := range bridges {
		a := last[b.Name]
		if a != nil && a.cause == "" && a.prev != nil && (a.step == 1 || a.end >= len(log)-3 || a.prev.cause == CauseRefused && unnamedAfter(a.end) >= 0) {
			// A retry still under way (its name not resolved yet, or nothing
			// after it in the log): the attempt
			// before it is the last outcome known.
			a = a.prev
		}
		if a != nil && a.cause != "" {
			out = append(out, Diagnosis{Bridge: b.Name, Cause: a.cause, Address: a.addr, Lines: a.lines})
		}
	}
	return out
}
