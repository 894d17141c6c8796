package cli

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/plan"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/wizard"
)

// setupIntro is what setup says before its first question: what it asks,
// that nothing changes before the last answer, and how to leave.
const setupIntro = `Setup asks for names, addresses, listeners and users, then shows its plan.
Nothing changes before you answer y at the end; Ctrl-C quits at any time.
`

// The screens below are measured on an 80x24 terminal (an SSH session on a
// Pi): the plan after the last question fits in it with the question, and
// the whole plan (broker.yaml and every diff, about 140 lines on a fresh
// Pi) is one answer away.

// fullPlan is broker.yaml (hashes shortened) and the plan as `mosqprov plan`
// prints it, with its summary line.
func fullPlan(a *App, data []byte, res *plan.Result, files []plan.FileDiff) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s (password hashes shortened here):\n\n%s\n", layout.Spec, shortenHashes(data))
	writePlan(&b, res, files)
	fmt.Fprintln(&b, planLine(a, res))
	return b.String()
}

// shortPlan is the plan in one line per step, each cut to the terminal's
// width, and its summary line (planLine).
func shortPlan(res *plan.Result, width int, summary string) string {
	var b strings.Builder
	fmt.Fprintln(&b, "\nThe plan (answer p to see broker.yaml and every change in full):")
	for _, st := range res.Steps {
		var items []string
		for _, c := range st.Changes {
			if c.Changed {
				items = append(items, c.Action.Glyph()+" "+c.What)
			}
		}
		if len(items) == 0 {
			continue
		}
		if len(items) == 1 {
			for _, c := range st.Changes {
				if c.Changed && c.Detail != "" {
					items[0] += " (" + c.Detail + ")"
				}
			}
		}
		fmt.Fprintln(&b, cut("  "+st.Name+": "+strings.Join(items, ", "), width))
	}
	fmt.Fprintln(&b, summary)
	return b.String()
}

// cut shortens s to width columns (counting runes), ending it with "…".
func cut(s string, width int) string {
	if width <= 1 || utf8.RuneCountInString(s) < width {
		return s
	}
	r := []rune(s)
	return string(r[:width-2]) + "…"
}

// width is the terminal's width, 80 when it can't be read.
func (o *setupOptions) width() int {
	if o.Width > 0 {
		return o.Width
	}
	if f, ok := o.IO.Out.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	return 80
}

// page shows the full plan: through $PAGER or less when stdout is a
// terminal (the person scrolls it, q comes back to the question), else as
// plain text.
func (o *setupOptions) page(text string) error {
	if o.Pager != nil {
		return o.Pager(text)
	}
	if f, ok := o.IO.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pager := os.Getenv("PAGER")
		if pager == "" {
			if _, err := exec.LookPath("less"); err == nil {
				pager = "less -R"
			}
		}
		if pager != "" {
			cmd := exec.Command("sh", "-c", pager)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(text), f, o.IO.ErrOut
			if err := cmd.Run(); err == nil {
				return nil
			}
		}
	}
	_, err := io.WriteString(o.IO.Out, text)
	return err
}

// confirmMessage is setup's last question.
const confirmMessage = "Write " + layout.Spec + " and apply? [y/N, p: full plan]"

// confirmSetup asks the last question until it is answered yes or no; p
// shows the full plan first.
func confirmSetup(p wizard.Prompter, showFull func() error) (bool, error) {
	for {
		ans, err := p.Input(confirmMessage, "y writes broker.yaml and applies it; n (or Enter) leaves every file as it is; p shows broker.yaml and every change.", "", func(v string) error {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "", "y", "yes", "n", "no", "p", "plan":
				return nil
			}
			return errs.Invalid("answer", "type y (write and apply), n (change nothing) or p (see the full plan)")
		})
		if err != nil {
			return false, err
		}
		switch strings.ToLower(strings.TrimSpace(ans)) {
		case "y", "yes":
			return true, nil
		case "p", "plan":
			if err := showFull(); err != nil {
				return false, err
			}
			continue
		}
		return false, nil
	}
}

// newUser is the user a person just added (the last one new in this run),
// else the spec's first user, else "".
func newUser(start, s *spec.Spec) string {
	had := map[string]bool{}
	if start != nil {
		for _, u := range start.Users {
			had[u.Name] = true
		}
	}
	for i := len(s.Users) - 1; i >= 0; i-- {
		if !had[s.Users[i].Name] {
			return s.Users[i].Name
		}
	}
	if len(s.Users) > 0 {
		return s.Users[0].Name
	}
	return ""
}

// clientHost is the host a client names to reach the listener l of s: its
// bind address, or the broker's name when it listens on every interface.
func clientHost(s *spec.Spec, l spec.Listener) string {
	if l.Bind != "" && l.Bind != "0.0.0.0" && l.Bind != "::" {
		return l.Bind
	}
	return s.Hostname
}

// clientURL is where a client connects to the listener l of s.
func clientURL(s *spec.Spec, l spec.Listener) string {
	return l.Type + "://" + net.JoinHostPort(clientHost(s, l), strconv.Itoa(l.Port))
}

// topicFor is a topic user may read: the first of its ACL rules (a pattern
// rule's %u filled in), or # when the spec has no ACL.
func topicFor(s *spec.Spec, user string) string {
	for _, r := range s.ACL {
		if r.User != user && !r.Pattern {
			continue
		}
		for _, list := range [][]string{r.ReadWrite, r.Read} {
			if len(list) > 0 && !strings.Contains(list[0], "%c") {
				return strings.ReplaceAll(list[0], "%u", user)
			}
		}
	}
	return "#"
}

// printNextSteps says what a person does after setup: the addresses
// clients use, the CA they trust, a line that proves the new user works,
// and what ESP32 devices need.
func printNextSteps(w io.Writer, s *spec.Spec, user string) {
	fmt.Fprintln(w, "\nClients connect to:")
	var tlsL, plainL *spec.Listener
	anyTLS := false
	for i, l := range s.Listeners {
		note := ""
		switch {
		case l.TLS():
			anyTLS = true
			if tlsL == nil && l.Type == spec.MQTTS {
				tlsL = &s.Listeners[i]
			}
		case l.Type == spec.MQTT:
			if plainL == nil {
				plainL = &s.Listeners[i]
			}
			if l.Bind == "127.0.0.1" || l.Bind == "::1" {
				note = "   (this machine only)"
			}
		}
		fmt.Fprintf(w, "  %s%s\n", clientURL(s, l), note)
	}
	if anyTLS {
		fmt.Fprintf(w, "Their CA certificate: %s\n", layout.BrokerCACert)
		fmt.Fprintln(w, "  (for a device: sudo mosqprov cert export > ca.crt)")
		// mbedTLS matches an IP address against the certificate's iPAddress
		// names only from 3.x (x509_crt_check_san_ip); 2.28, which
		// Arduino-ESP32 2.x builds on, compares the host with DNS names only.
		fmt.Fprintln(w, "ESP32: Arduino-ESP32 2.x (mbedTLS 2.28) matches names only, so connect such")
		fmt.Fprintf(w, "  devices to %s, not to an IP address; mbedTLS 3.x (Arduino-ESP32 3.x,\n", s.Hostname)
		fmt.Fprintln(w, "  ESP-IDF 5) also matches the IP addresses in the certificate.")
	}
	if user != "" && (tlsL != nil || plainL != nil) {
		word := system.ShellQuote(user)
		fmt.Fprintf(w, "\nTry %s (type its password, then Enter; Ctrl-C stops):\n", user)
		sub := "mosquitto_sub"
		if tlsL != nil {
			sub += fmt.Sprintf(" -h %s -p %d --cafile %s", s.Hostname, tlsL.Port, layout.BrokerCACert)
		} else {
			sub += fmt.Sprintf(" -h %s -p %d", clientHost(s, *plainL), plainL.Port)
		}
		fmt.Fprintf(w, "  read -rs PW; %s -u %s -P \"$PW\" -t %s -v\n", sub, word, system.ShellQuote(topicFor(s, user)))
		fmt.Fprintf(w, "\nNext:\n  sudo mosqprov verify --user %s   # check every listener as a client would\n", word)
	} else {
		fmt.Fprintln(w, "\nNext:\n  sudo mosqprov user add NAME   # a user for each device")
	}
	fmt.Fprintln(w, "  sudo mosqprov doctor   # when a device can't connect")
}
