//go:build linux

package wizard

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// pty is a pseudo-terminal with a Terminal on its slave side: the test
// types into the master as a person types into a terminal, and reads what
// the Terminal draws. Raw mode, the key reader and the drawing all run as
// they do under `mosqprov setup`.
type pty struct {
	t      *testing.T
	master *os.File
	slave  *os.File
	term   *Terminal
	said   bytes.Buffer // Say's lines
	mu     sync.Mutex
	out    bytes.Buffer // everything the Terminal wrote
	mark   int          // waitFor looks from here on
	read   chan struct{}
}

func newPTY(t *testing.T, cols uint16) *pty {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	// Non-blocking, so Close ends the reader below.
	master := os.NewFile(uintptr(fd), "ptmx")
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatalf("set the pty's size: %v", err)
	}
	p := &pty{t: t, master: master, slave: slave, read: make(chan struct{})}
	p.term = NewTerminal(slave, slave, &p.said)
	p.term.color = false // the tests read text; colours are tested on their own
	go func() {
		defer close(p.read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		slave.Close()
		master.Close()
		<-p.read
	})
	return p
}

func (p *pty) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the Terminal has written text (since the last
// waitFor that matched).
func (p *pty) waitFor(text string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := p.output()
		if i := strings.Index(out[p.mark:], text); i >= 0 {
			p.mark += i + len(text)
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the terminal never showed %q; it showed:\n%q", text, out[p.mark:])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSuffix waits until the last thing written is end.
func (p *pty) waitSuffix(end string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasSuffix(p.output(), end) {
		if time.Now().After(deadline) {
			p.t.Fatalf("the terminal's output does not end with %q:\n%q", end, p.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// send types keys.
func (p *pty) send(keys string) {
	p.t.Helper()
	if _, err := p.master.Write([]byte(keys)); err != nil {
		p.t.Fatal(err)
	}
}

// lastDraw is what the last redraw put on the screen (after its "erase
// to the end of the screen").
func (p *pty) lastDraw() string {
	out := p.output()
	return out[strings.LastIndex(out, "\x1b[J")+3:]
}

func (p *pty) termios() *unix.Termios {
	p.t.Helper()
	st, err := unix.IoctlGetTermios(int(p.slave.Fd()), unix.TCGETS)
	if err != nil {
		p.t.Fatal(err)
	}
	return st
}

type reply[T any] struct {
	v   T
	err error
}

// ask runs a question while the test types.
func ask[T any](f func() (T, error)) <-chan reply[T] {
	c := make(chan reply[T], 1)
	go func() {
		v, err := f()
		c <- reply[T]{v, err}
	}()
	return c
}

func answer[T any](t *testing.T, c <-chan reply[T]) (T, error) {
	t.Helper()
	select {
	case r := <-c:
		return r.v, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("the question never returned")
		panic("unreachable")
	}
}

const (
	up        = "\x1b[A"
	down      = "\x1b[B"
	upSS3     = "\x1bOA" // what a terminal in application cursor mode sends
	right     = "\x1b[C"
	left      = "\x1b[D"
	backspace = "\x7f"
	ctrlC     = "\x03"
	ctrlD     = "\x04"
	ctrlU     = "\x15"
	ctrlW     = "\x17"
)

func TestTerminalInput(t *testing.T) {
	p := newPTY(t, 80)
	before := p.termios()
	validate := func(v string) error {
		if v == "bad" {
			return errors.New("bad is not allowed")
		}
		return nil
	}
	c := ask(func() (string, error) { return p.term.Input("Name", "The help text.", "dflt", validate) })
	p.waitFor("? Name [? for help] (dflt) ")
	p.send("?\r")
	p.waitFor("? The help text.\r\n? Name (dflt) ")
	// Backspace edits the line; the validator's error is shown above the
	// question, which is asked again.
	p.send("bax" + backspace + "d\r")
	p.waitFor("X Sorry, your reply was invalid: bad is not allowed\r\n? The help text.\r\n? Name (dflt) ")
	p.send("one two" + ctrlW + "three" + ctrlU + "good\r")
	v, err := answer(t, c)
	if err != nil || v != "good" {
		t.Fatalf("Input = %q, %v; want good", v, err)
	}
	// The answer is on the question's line, under the last error.
	p.waitFor("X Sorry, your reply was invalid: bad is not allowed\r\n? Name good\r\n")
	if after := p.termios(); *after != *before {
		t.Errorf("the terminal was left changed:\nbefore %+v\nafter  %+v", before, after)
	}

	// Enter takes the default; Ctrl-W removes the last word.
	c = ask(func() (string, error) { return p.term.Input("Other", "", "x, y", nil) })
	p.waitFor("? Other (x, y) ")
	p.send("\r")
	if v, err := answer(t, c); err != nil || v != "x, y" {
		t.Fatalf("Input with Enter = %q, %v; want the default", v, err)
	}
	p.waitFor("? Other x, y\r\n")
	c = ask(func() (string, error) { return p.term.Input("Words", "", "", nil) })
	p.waitFor("? Words ")
	p.send("one two  " + ctrlW + "three\r")
	if v, err := answer(t, c); err != nil || v != "one three" {
		t.Fatalf("Input with Ctrl-W = %q, %v; want %q", v, err, "one three")
	}
}

func TestTerminalPassword(t *testing.T) {
	p := newPTY(t, 80)
	const secret = "s3cret-typed-pw"
	c := ask(func() (string, error) { return p.term.Password("Password for blinds", "Not shown while you type.") })
	p.waitFor("? Password for blinds [? for help] ")
	p.send("?\r")
	p.waitFor("? Not shown while you type.\r\n? Password for blinds ")
	p.send(secret[:5] + "x" + backspace + secret[5:] + "\r")
	v, err := answer(t, c)
	if err != nil || v != secret {
		t.Fatalf("Password = %q, %v", v, err)
	}
	p.waitFor("? Password for blinds \r\n")
	if out := p.output(); strings.Contains(out, secret[:4]) || strings.Contains(out, "*") {
		t.Fatalf("the password (or its length) was shown:\n%q", out)
	}
}

func TestTerminalConfirm(t *testing.T) {
	p := newPTY(t, 80)
	c := ask(func() (bool, error) { return p.term.Confirm("Add a user?", "Each device its own user.", true) })
	p.waitFor("? Add a user? [? for help] (Y/n) ")
	p.send("maybe\r")
	p.waitFor(`X Sorry, your reply was invalid: "maybe" is not a valid answer: type y or n` + "\r\n? Add a user? [? for help] (Y/n) ")
	p.send(" ?\r") // blanks around it too, in a yes/no question
	p.waitFor("? Each device its own user.\r\n? Add a user? (Y/n) ")
	p.send("\r")
	if v, err := answer(t, c); err != nil || !v {
		t.Fatalf("Confirm with Enter, default yes = %v, %v", v, err)
	}
	p.waitFor("? Add a user? Yes\r\n")

	for _, tc := range []struct {
		keys string
		want bool
		word string
	}{{"\r", false, "No"}, {"Y\r", true, "Yes"}, {"yes\r", true, "Yes"}, {"n\r", false, "No"}} {
		c = ask(func() (bool, error) { return p.term.Confirm("Again?", "", false) })
		p.waitFor("? Again? (y/N) ")
		p.send(tc.keys)
		if v, err := answer(t, c); err != nil || v != tc.want {
			t.Fatalf("Confirm %q = %v, %v; want %v", tc.keys, v, err, tc.want)
		}
		p.waitFor("? Again? " + tc.word + "\r\n")
	}
}

var fourOptions = []Option{{"a", "note a"}, {"b", "note b"}, {"c", "note c"}, {"d", ""}}

func TestTerminalSelect(t *testing.T) {
	p := newPTY(t, 80)
	before := p.termios()
	c := ask(func() (string, error) { return p.term.Select("Pick", "Pick one.", fourOptions, "c") })
	// The default is where the cursor starts; notes follow " - ".
	p.waitFor("? Pick [Use arrows to move, Enter to choose, ? for more help]\r\n  a - note a\r\n  b - note b\r\n> c - note c\r\n  d")
	for _, k := range []struct{ keys, at string }{
		{down, "> d"}, {down, "> a"}, // wraps at the end
		{up, "> d"}, {upSS3, "> c"}, {"k", "> b"}, {"j", "> c"}, {up + up, "> a"},
	} {
		p.send(k.keys)
		p.waitFor(k.at)
		if d := p.lastDraw(); strings.Count(d, ">") != 1 || !strings.Contains(d, k.at) {
			t.Fatalf("after %q the list is\n%s", k.keys, d)
		}
	}
	p.send("?")
	p.waitFor("? Pick one.\r\n? Pick [Use arrows to move, Enter to choose]\r\n> a - note a")
	p.send("j\r")
	v, err := answer(t, c)
	if err != nil || v != "b" {
		t.Fatalf("Select = %q, %v; want b", v, err)
	}
	p.waitFor("? Pick b\r\n" + showCur) // the cursor shown again
	if after := p.termios(); *after != *before {
		t.Errorf("the terminal was left changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestTerminalSelectPages(t *testing.T) {
	p := newPTY(t, 80)
	var opts []Option
	for i := range 15 {
		opts = append(opts, Option{Value: "opt" + strconv.Itoa(100+i)})
	}
	c := ask(func() (string, error) { return p.term.Select("Pick", "", opts, "") })
	p.waitFor("> opt100")
	if d := p.lastDraw(); !strings.Contains(d, "opt109") || strings.Contains(d, "opt110") {
		t.Fatalf("the first page is not options 0 to 9:\n%s", d)
	}
	p.send(strings.Repeat(down, 12))
	p.waitFor("> opt112")
	if d := p.lastDraw(); !strings.Contains(d, "opt105") || strings.Contains(d, "opt104") || !strings.Contains(d, "opt114") {
		t.Fatalf("the last page is not options 5 to 14:\n%s", d)
	}
	p.send("\r")
	if v, err := answer(t, c); err != nil || v != "opt112" {
		t.Fatalf("Select = %q, %v", v, err)
	}
}

func TestTerminalMultiSelect(t *testing.T) {
	p := newPTY(t, 80)
	needA := func(v []string) error {
		if !slices.Contains(v, "a") {
			return errors.New("a is needed")
		}
		return nil
	}
	c := ask(func() ([]string, error) {
		return p.term.MultiSelect("Which", "Space toggles.", fourOptions, []string{"b", "d"}, needA)
	})
	// Defaults are checked; the cursor is on the first option.
	p.waitFor("? Which [Use arrows to move, space to select, <right> to all, <left> to none, ? for more help]\r\n" +
		"> [ ]  a - note a\r\n  [x]  b - note b\r\n  [ ]  c - note c\r\n  [x]  d")
	// Enter with the defaults: the validator says no, the list stays as it was.
	p.send("\r")
	p.waitFor("X Sorry, your reply was invalid: a is needed\r\n? Which ")
	p.waitFor("> [ ]  a - note a\r\n  [x]  b - note b")
	p.send(" ")
	p.waitFor("> [x]  a")
	p.send("j ")
	p.waitFor("> [ ]  b")
	p.send("?")
	p.waitFor("? Space toggles.\r\n")
	p.send("\r")
	v, err := answer(t, c)
	if err != nil || strings.Join(v, ",") != "a,d" {
		t.Fatalf("MultiSelect = %q, %v; want a, d", v, err)
	}
	p.waitFor("? Which a, d\r\n")

	// <right> checks all, <left> none; none is allowed without a validator.
	c = ask(func() ([]string, error) { return p.term.MultiSelect("All", "", fourOptions, nil, nil) })
	p.waitFor("? All [Use arrows to move, space to select, <right> to all, <left> to none]")
	p.send(right)
	p.waitFor("[x]  d")
	p.send("\r")
	if v, err := answer(t, c); err != nil || strings.Join(v, ",") != "a,b,c,d" {
		t.Fatalf("MultiSelect after <right> = %q, %v", v, err)
	}
	c = ask(func() ([]string, error) { return p.term.MultiSelect("None", "", fourOptions, []string{"a", "c"}, nil) })
	p.waitFor("? None [")
	p.send(left)
	p.waitFor("[ ]  c")
	p.send("\r")
	if v, err := answer(t, c); err != nil || len(v) != 0 {
		t.Fatalf("MultiSelect after <left> = %q, %v", v, err)
	}
	p.waitFor("? None \r\n")
}

// Ctrl-C (and Ctrl-D) at any question is ErrInterrupted, and the terminal
// is given back as it was, its cursor shown.
func TestTerminalInterrupt(t *testing.T) {
	for _, tc := range []struct {
		name, prompt, keys string
		ask                func(*Terminal) error
	}{
		{"select", "> a", down + ctrlC, func(t *Terminal) error {
			_, err := t.Select("Pick", "", fourOptions, "")
			return err
		}},
		{"multiselect", "[ ]  a", " " + ctrlC, func(t *Terminal) error {
			_, err := t.MultiSelect("Which", "", fourOptions, nil, nil)
			return err
		}},
		{"input", "? Name ", "half" + ctrlC, func(t *Terminal) error {
			_, err := t.Input("Name", "", "", nil)
			return err
		}},
		{"password ctrl-d", "? Password ", "half" + ctrlD, func(t *Terminal) error {
			_, err := t.Password("Password", "")
			return err
		}},
		{"confirm", "? Sure? ", ctrlC, func(t *Terminal) error {
			_, err := t.Confirm("Sure?", "", false)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPTY(t, 80)
			before := p.termios()
			c := ask(func() (struct{}, error) { return struct{}{}, tc.ask(p.term) })
			p.waitFor(tc.prompt)
			if raw := p.termios(); raw.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
				t.Fatalf("the terminal is not raw during the question: lflag %#x", raw.Lflag)
			}
			p.send(tc.keys)
			if _, err := answer(t, c); !errors.Is(err, errs.ErrInterrupted) {
				t.Fatalf("err = %v; want ErrInterrupted", err)
			}
			if after := p.termios(); *after != *before {
				t.Errorf("the terminal was left changed:\nbefore %+v\nafter  %+v", before, after)
			}
			// "cancelled" goes on a line of its own; the cursor is shown.
			end := "\r\n"
			if strings.Contains(p.output(), hideCur) {
				end += showCur
			}
			p.waitSuffix(end)
		})
	}
}

// eofIn is a terminal whose input has ended (the other side closed).
type eofIn struct {
	*os.File // the pipe the keys come from
	tty      *os.File
}

func (e eofIn) Fd() uintptr { return e.tty.Fd() }

func TestTerminalEOF(t *testing.T) {
	p := newPTY(t, 80)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Write([]byte("par"))
	w.Close()
	term := NewTerminal(eofIn{r, p.slave}, p.slave, &p.said)
	before := p.termios()
	if _, err := term.Input("Name", "", "", nil); !errors.Is(err, errs.ErrInterrupted) {
		t.Fatalf("Input at the end of input: %v; want ErrInterrupted", err)
	}
	if _, err := term.Select("Pick", "", fourOptions, ""); !errors.Is(err, errs.ErrInterrupted) {
		t.Fatalf("Select at the end of input: %v; want ErrInterrupted", err)
	}
	if after := p.termios(); *after != *before {
		t.Errorf("the terminal was left changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// The line is edited as in a shell: the cursor moves in it, characters go
// in and out where it is, and the screen's cursor is put there.
func TestTerminalLineEditing(t *testing.T) {
	p := newPTY(t, 80)
	c := ask(func() (string, error) { return p.term.Input("Name", "", "", nil) })
	p.waitFor("? Name ")
	p.send("hllo" + left + left + left)
	// "? Name " is 7 columns, "h" one: the cursor goes to column 9.
	p.waitFor("? Name hllo\x1b[9G")
	p.send("e")
	p.waitFor("? Name hello\x1b[10G")
	p.send("\x01ab\x05yz" + // Ctrl-A, Ctrl-E
		"\x1b[H\x1b[3~" + // Home, Delete
		"\x1b[F" + backspace + // End, Backspace
		"\x1b[1~" + right + ctrlU + // Home, →, Ctrl-U deletes the b before the cursor
		"\x1b[4~\x1b[15~!" + // End, F5 (nothing)
		"\x1bOH" + right + right + ctrlW + // Home (application mode), Ctrl-W deletes "he"
		"\r")
	if v, err := answer(t, c); err != nil || v != "lloy!" {
		t.Fatalf("Input = %q, %v; want %q", v, err, "lloy!")
	}
	p.waitFor("? Name lloy!\r\n")
}

// On a line that wraps, the cursor goes up to the row it is on, and the
// next redraw (and Ctrl-C's new line) starts from there.
func TestTerminalLineEditingWrapped(t *testing.T) {
	p := newPTY(t, 20)
	c := ask(func() (string, error) { return p.term.Input("Name", "", "", nil) })
	p.waitFor("? Name ")
	typed := strings.Repeat("y", 30) // 37 columns: 2 rows
	p.send(typed)
	p.waitFor(typed)
	p.send("\x1b[H")
	p.waitFor("? Name " + typed + "\x1b[1A\x1b[8G") // row 1 to row 0, column 8
	p.send("x")
	// The cursor is on the first row already: no move up before the redraw.
	p.waitFor("\r\x1b[J? Name x" + typed + "\x1b[1A\x1b[9G")
	if !strings.Contains(p.output(), "\x1b[8G\r\x1b[J? Name x") {
		t.Fatalf("the redraw did not start from the cursor's row:\n%q", p.output())
	}
	p.send(ctrlC)
	if _, err := answer(t, c); !errors.Is(err, errs.ErrInterrupted) {
		t.Fatal(err)
	}
	p.waitSuffix("\x1b[9G\x1b[1B\r\n") // down to the last row, then a new line
}

// Keys typed before a question is drawn are kept for it, and a lone Esc
// or an unknown key sequence does nothing.
func TestTerminalKeysAhead(t *testing.T) {
	p := newPTY(t, 80)
	c := ask(func() (string, error) { return p.term.Select("Pick", "", fourOptions, "") })
	p.waitFor("> a")
	p.send("\x1b[5~" + down + "\r" + "typed ahead\r") // PageUp: ignored
	if v, err := answer(t, c); err != nil || v != "b" {
		t.Fatalf("Select = %q, %v; want b", v, err)
	}
	if v, err := p.term.Input("Next", "", "", nil); err != nil || v != "typed ahead" {
		t.Fatalf("Input after keys typed ahead = %q, %v", v, err)
	}
	c = ask(func() (string, error) { return p.term.Input("Esc", "", "", nil) })
	p.waitFor("? Esc ")
	p.send("\x1b") // Esc alone
	time.Sleep(50 * time.Millisecond)
	p.send("\x1bok\r") // Alt-o: o
	if v, err := answer(t, c); err != nil || v != "ok" {
		t.Fatalf("Input after a lone Esc = %q, %v", v, err)
	}
}

// A redraw goes back up exactly the rows the last drawing took, long
// lines wrapped at the terminal's width (what survey did with its notes).
func TestTerminalRedrawWrapped(t *testing.T) {
	p := newPTY(t, 20)
	opts := []Option{{"a", strings.Repeat("n", 30)}, {"b", ""}}
	c := ask(func() (string, error) { return p.term.Select("Pick", "", opts, "") })
	p.waitFor("  b")
	// Head "? Pick [Use arrows to move, Enter to choose]" is 44 columns:
	// 3 rows; "> a - nnn..." is 36: 2 rows; "  b": 1 row. So 6 rows, and
	// the redraw after a key goes up 5.
	p.send(down)
	p.waitFor("\r\x1b[5A\x1b[J")
	p.send(ctrlC)
	answer(t, c)
}

func TestRows(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
	}{
		{"", 1}, {"abc", 1}, {strings.Repeat("x", 20), 1}, {strings.Repeat("x", 21), 2}, {strings.Repeat("x", 41), 3},
		{styleQ + "?" + styleOff + " " + strings.Repeat("x", 18), 1}, // colours take no columns
		{"ü" + strings.Repeat("x", 19), 1},
	} {
		if got := rows(tc.line, 20); got != tc.want {
			t.Errorf("rows(%q) = %d; want %d", tc.line, got, tc.want)
		}
	}
}

func TestTerminalColors(t *testing.T) {
	p := newPTY(t, 80)
	p.term.color = true
	c := ask(func() (string, error) { return p.term.Input("Name", "", "", nil) })
	p.waitFor(styleQ + "?" + styleOff + " " + styleMsg + "Name" + styleOff + " ")
	p.send("x\r")
	answer(t, c)
	p.waitFor(styleNote + "x" + styleOff + "\r\n")
	t.Setenv("NO_COLOR", "1")
	if NewTerminal(p.slave, p.slave, nil).color {
		t.Error("colours with NO_COLOR set")
	}
}

func TestTerminalSay(t *testing.T) {
	p := newPTY(t, 80)
	p.term.Say("Users kept: %s", "a, b")
	if p.said.String() != "Users kept: a, b\n" {
		t.Fatalf("Say wrote %q", p.said.String())
	}
}
