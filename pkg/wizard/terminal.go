package wizard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// FileReader is the terminal the keys come from: raw mode needs its descriptor.
type FileReader interface {
	io.Reader
	Fd() uintptr
}

// FileWriter is the terminal the questions are drawn on: its width says
// where long lines wrap.
type FileWriter interface {
	io.Writer
	Fd() uintptr
}

// Terminal is the Prompter on a real terminal, on golang.org/x/term alone.
// It draws its questions the way survey (which setup used before) did:
// "? " and the question, the answer after it once given, "?" then Enter (or
// ? in a list) for the help line, an error line above a question asked
// again. The terminal is raw only while a question waits for keys and is
// always given back as it was, the cursor shown. Ctrl-C, Ctrl-D and a
// closed terminal return errs.ErrInterrupted.
//
// Everything here is built when a question is asked, nothing when the
// program starts: every mosqprov command links this package.
type Terminal struct {
	in    FileReader
	out   FileWriter
	err   io.Writer
	keys  *bufio.Reader // one for every question: keys typed ahead are kept
	color bool
}

// NewTerminal asks on in and out; Say writes to errOut. Colours are off
// with NO_COLOR set or TERM=dumb.
func NewTerminal(in FileReader, out FileWriter, errOut io.Writer) *Terminal {
	return &Terminal{in: in, out: out, err: errOut, keys: bufio.NewReader(in),
		color: os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"}
}

// pageSize is how many options a list shows at once.
const pageSize = 10

// The help key, and the look survey gave the questions.
const (
	helpKey   = "?"
	helpHint  = "[? for help]"
	invalid   = "Sorry, your reply was invalid: "
	styleQ    = "\x1b[1;92m" // the "?" before a question: bright green, bold
	styleMsg  = "\x1b[1m"
	styleNote = "\x1b[36m" // answers, help, descriptions: cyan
	styleDef  = "\x1b[37m"
	styleErr  = "\x1b[31m"
	styleOff  = "\x1b[0m"
	hideCur   = "\x1b[?25l"
	showCur   = "\x1b[?25h"
)

func (t *Terminal) paint(style, s string) string {
	if !t.color || s == "" {
		return s
	}
	return style + s + styleOff
}

// head is the help line (when shown) and the question's own line up to
// where its hints or its answer go.
func (t *Terminal) head(message, help string, showHelp bool) []string {
	var lines []string
	if showHelp && help != "" {
		lines = append(lines, t.paint(styleNote, "? "+help))
	}
	return append(lines, t.paint(styleQ, "?")+" "+t.paint(styleMsg, message)+" ")
}

// hint is "[? for help] " while the help is there to ask for.
func (t *Terminal) hint(help string, showHelp bool) string {
	if help == "" || showHelp {
		return ""
	}
	return t.paint(styleNote, helpHint) + " "
}

// answered is the question's line once answered.
func (t *Terminal) answered(message, answer string) string {
	return t.paint(styleQ, "?") + " " + t.paint(styleMsg, message) + " " + t.paint(styleNote, answer)
}

func (t *Terminal) Input(message, help, def string, validate func(string) error) (string, error) {
	prompt := ""
	if def != "" {
		prompt = t.paint(styleDef, "("+def+")") + " "
	}
	return t.line(message, help, prompt, true, func(line string) (string, string, error) {
		if line == "" {
			line = def
		}
		if validate != nil {
			if err := validate(line); err != nil {
				return "", "", err
			}
		}
		return line, line, nil
	})
}

func (t *Terminal) Password(message, help string) (string, error) {
	// Not echoed, not even as stars: nothing on the screen tells what was
	// typed or how long it is.
	return t.line(message, help, "", false, func(line string) (string, string, error) {
		return line, "", nil
	})
}

func (t *Terminal) Confirm(message, help string, def bool) (bool, error) {
	prompt := "(y/N) "
	if def {
		prompt = "(Y/n) "
	}
	ans := def
	_, err := t.line(message, help, t.paint(styleDef, prompt), true, func(line string) (string, string, error) {
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "":
			ans = def
		case "y", "yes":
			ans = true
		case "n", "no":
			ans = false
		case helpKey:
			if help != "" {
				return "", "", helpWanted{} // " ? " too
			}
			fallthrough
		default:
			return "", "", fmt.Errorf("%q is not a valid answer: type y or n", line)
		}
		if ans {
			return line, "Yes", nil
		}
		return line, "No", nil
	})
	return ans, err
}

// helpWanted is what line's accept returns to show the help line instead
// of taking an answer (a type, not a variable: nothing is built at start).
type helpWanted struct{}

func (helpWanted) Error() string { return "the help line" }

// line asks a question answered with a line of text, until accept takes
// the line: accept gives the answer and what the question's line shows
// once answered, or an error, shown above the question asked again
// (helpWanted: the help line instead). prompt follows the help hint (a
// default, "(y/N)"); echo says whether the keys typed show. "?" alone asks
// for the help line, when there is one.
func (t *Terminal) line(message, help, prompt string, echo bool, accept func(line string) (answer, shown string, err error)) (string, error) {
	q, err := t.ask(false)
	if err != nil {
		return "", err
	}
	defer q.close()
	showHelp := false
	for {
		line, err := q.readLine(echo, func(typed string) []string {
			lines := t.head(message, help, showHelp)
			lines[len(lines)-1] += t.hint(help, showHelp) + prompt + typed
			return lines
		})
		if err != nil {
			return "", q.abort(err)
		}
		if line == helpKey && help != "" {
			showHelp = true
			continue
		}
		answer, shown, err := accept(line)
		if _, ok := err.(helpWanted); ok {
			showHelp = true
			continue
		}
		if err != nil {
			q.fail(err)
			continue
		}
		q.finish(t.answered(message, shown))
		return answer, nil
	}
}

func (t *Terminal) Select(message, help string, opts []Option, def string) (string, error) {
	cur := 0
	for i, o := range opts {
		if o.Value == def {
			cur = i
		}
	}
	var answer string
	err := t.list(message, help, "Enter to choose", opts, cur,
		func(i int, selected bool) string {
			mark := "  "
			if selected {
				mark = t.paint(styleNote, ">") + " "
			}
			return mark + opts[i].Value + t.note(opts[i].Note)
		},
		func(k key, cur int) (string, bool, error) {
			if k.kind != keyEnter {
				return "", false, nil
			}
			answer = opts[cur].Value
			return answer, true, nil
		})
	if err != nil {
		return "", err
	}
	return answer, nil
}

func (t *Terminal) MultiSelect(message, help string, opts []Option, defs []string, validate func([]string) error) ([]string, error) {
	checked := make([]bool, len(opts))
	for i, o := range opts {
		checked[i] = slices.Contains(defs, o.Value)
	}
	var chosen []string
	err := t.list(message, help, "space to select, <right> to all, <left> to none", opts, 0,
		func(i int, selected bool) string {
			mark, box := " ", t.paint(styleDef, " [ ] ")
			if selected {
				mark = t.paint(styleNote, ">")
			}
			if checked[i] {
				box = t.paint(styleNote, " [x] ")
			}
			return mark + box + " " + opts[i].Value + t.note(opts[i].Note)
		},
		func(k key, cur int) (string, bool, error) {
			switch {
			case k.is(' '):
				checked[cur] = !checked[cur]
			case k.kind == keyRight || k.kind == keyLeft:
				for i := range checked {
					checked[i] = k.kind == keyRight
				}
			case k.kind == keyEnter:
				chosen = nil
				for i, o := range opts {
					if checked[i] {
						chosen = append(chosen, o.Value)
					}
				}
				if validate != nil {
					if err := validate(chosen); err != nil {
						return "", false, err
					}
				}
				return strings.Join(chosen, ", "), true, nil
			}
			return "", false, nil
		})
	if err != nil {
		return nil, err
	}
	return chosen, nil
}

// list asks a question answered by moving through opts (up, down, k, j;
// starting at cur), a page of them on the screen, each drawn by row. A key
// other than a move or "?" (the help line) goes to onKey, which says when
// the question is answered and what its line then shows, or gives an
// error shown above the question asked again. keys names the keys onKey
// takes, in the hint.
func (t *Terminal) list(message, help, keys string, opts []Option, cur int, row func(i int, selected bool) string, onKey func(k key, cur int) (shown string, done bool, err error)) error {
	if len(opts) == 0 {
		return errors.New("select " + message + ": no options")
	}
	q, err := t.ask(true)
	if err != nil {
		return err
	}
	defer q.close()
	showHelp := false
	for {
		lines := t.head(message, help, showHelp)
		lines[len(lines)-1] += t.paint(styleNote, "[Use arrows to move, "+keys+moreHelp(help, showHelp)+"]")
		start, end := page(len(opts), cur)
		for i := start; i < end; i++ {
			lines = append(lines, row(i, i == cur))
		}
		q.draw(lines...)
		k, err := q.t.readKey()
		if err != nil {
			return q.abort(err)
		}
		switch {
		case k.kind == keyUp || k.is('k'):
			cur = (cur + len(opts) - 1) % len(opts)
		case k.kind == keyDown || k.is('j'):
			cur = (cur + 1) % len(opts)
		case k.is('?') && help != "":
			showHelp = true
		default:
			shown, done, err := onKey(k, cur)
			if err != nil {
				q.fail(err)
				continue
			}
			if done {
				q.finish(t.answered(message, shown))
				return nil
			}
		}
	}
}

func (t *Terminal) Say(format string, args ...any) {
	fmt.Fprintf(t.err, format+"\n", args...)
}

// note is an option's description after it, as " - note".
func (t *Terminal) note(n string) string {
	if n == "" {
		return ""
	}
	return " - " + t.paint(styleNote, n)
}

func moreHelp(help string, showHelp bool) string {
	if help == "" || showHelp {
		return ""
	}
	return ", ? for more help"
}

// page is the window of at most pageSize options shown around the
// current one, as survey paged them.
func page(n, cur int) (start, end int) {
	switch {
	case n <= pageSize:
		return 0, n
	case cur < pageSize/2:
		return 0, pageSize
	case n-cur-1 < pageSize/2:
		return n - pageSize, n
	default:
		return cur - pageSize/2, cur - pageSize/2 + pageSize
	}
}

// question is one question on the screen while the terminal is raw.
type question struct {
	t      *Terminal
	fd     int
	saved  *term.State
	width  int
	hide   bool
	rows   int      // screen rows drawn so far
	above  int      // how far the cursor is above the last of them (editing a wrapped line)
	errors []string // the last invalid reply's line, above the question
}

// ask puts the terminal in raw mode for one question; close undoes it.
func (t *Terminal) ask(hideCursor bool) (*question, error) {
	fd := int(t.in.Fd())
	saved, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	q := &question{t: t, fd: fd, saved: saved, width: 80, hide: hideCursor}
	if w, _, err := term.GetSize(int(t.out.Fd())); err == nil && w > 0 {
		q.width = w
	} else if w, _, err := term.GetSize(fd); err == nil && w > 0 {
		q.width = w
	}
	if hideCursor {
		q.write(hideCur)
	}
	return q, nil
}

// close gives the terminal back as it was, the cursor shown. It runs on
// every way out of a question (deferred), Ctrl-C and errors included.
func (q *question) close() {
	if q.hide {
		q.write(showCur)
	}
	term.Restore(q.fd, q.saved)
}

func (q *question) write(s string) {
	io.WriteString(q.t.out, s)
}

// draw replaces what the question drew last with lines (under the error
// line, if any). In raw mode a line ends with \r\n.
func (q *question) draw(lines ...string) {
	q.drawAt(0, lines...)
}

// drawAt draws lines and puts the cursor back columns before the end of
// the last one (where the typing goes, when ← moved it).
func (q *question) drawAt(back int, lines ...string) {
	var b strings.Builder
	b.WriteByte('\r')
	cursorUp(&b, q.rows-1-q.above)
	b.WriteString("\x1b[J")
	q.rows, q.above = 0, 0
	all := append(q.errors[:len(q.errors):len(q.errors)], lines...)
	for i, l := range all {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(l)
		q.rows += rows(l, q.width)
	}
	if n := columns(all[len(all)-1]); back > 0 && back <= n {
		// After n columns the cursor is on row (n-1)/width of the line
		// (at the right margin when n fills the row): go up to the
		// target's row, then to its column.
		end, at := max(n-1, 0)/q.width, n-back
		q.above = end - at/q.width
		cursorUp(&b, q.above)
		b.WriteString("\x1b[" + strconv.Itoa(at%q.width+1) + "G")
	}
	q.write(b.String())
}

func cursorUp(b *strings.Builder, n int) {
	if n > 0 {
		b.WriteString("\x1b[" + strconv.Itoa(n) + "A")
	}
}

// finish shows the answered question and moves to the next line.
func (q *question) finish(line string) {
	q.draw(line)
	q.write("\r\n")
	q.rows = 0
}

// fail puts err on the line above the question, which is asked again.
func (q *question) fail(err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	q.errors = []string{q.t.paint(styleErr, "X "+invalid+msg)}
}

// abort leaves what is drawn and moves below it, for the message that
// follows (Ctrl-C's "cancelled").
func (q *question) abort(err error) error {
	if q.above > 0 {
		q.write("\x1b[" + strconv.Itoa(q.above) + "B")
	}
	q.write("\r\n")
	q.rows, q.above = 0, 0
	return err
}

// readLine reads a line of text, drawing the question through render
// after every key with what was typed (nothing when echo is off). The keys
// edit as in a shell: ← → Home End (Ctrl-A, Ctrl-E) move, Backspace and
// Delete delete, Ctrl-U deletes to the start, Ctrl-W the word before.
func (q *question) readLine(echo bool, render func(typed string) []string) (string, error) {
	var line []rune
	pos := 0 // where the next character goes
	for {
		if echo {
			q.drawAt(len(line)-pos, render(string(line))...)
		} else {
			pos = len(line) // nothing shown, so nothing to move in
			q.draw(render("")...)
		}
		k, err := q.t.readKey()
		if err != nil {
			return "", err
		}
		switch k.kind {
		case keyEnter:
			return string(line), nil
		case keyChar:
			line = slices.Insert(line, pos, k.r)
			pos++
		case keyBackspace:
			if pos > 0 {
				line = slices.Delete(line, pos-1, pos)
				pos--
			}
		case keyDelete:
			if pos < len(line) {
				line = slices.Delete(line, pos, pos+1)
			}
		case keyLeft:
			pos = max(pos-1, 0)
		case keyRight:
			pos = min(pos+1, len(line))
		case keyHome:
			pos = 0
		case keyEnd:
			pos = len(line)
		case keyKillLine:
			line, pos = slices.Delete(line, 0, pos), 0
		case keyKillWord:
			n := pos
			for n > 0 && line[n-1] == ' ' {
				n--
			}
			for n > 0 && line[n-1] != ' ' {
				n--
			}
			line, pos = slices.Delete(line, n, pos), n
		}
	}
}

// rows is how many screen rows line takes on a terminal width columns wide.
func rows(line string, width int) int {
	if n := columns(line); n > 0 {
		return (n + width - 1) / width
	}
	return 1
}

// columns is how many columns line takes: escape sequences none, every
// other character one.
func columns(line string) int {
	n, esc := 0, false
	for _, r := range line {
		switch {
		case esc:
			esc = r < 0x40 || r > 0x7e || r == '['
		case r == 0x1b:
			esc = true
		default:
			n++
		}
	}
	return n
}

type keyKind int

const (
	keyNone keyKind = iota // a key questions don't use
	keyChar
	keyEnter
	keyBackspace
	keyKillLine // Ctrl-U
	keyKillWord // Ctrl-W
	keyUp
	keyDown
	keyLeft
	keyRight
	keyHome
	keyEnd
	keyDelete
)

type key struct {
	kind keyKind
	r    rune // a keyChar's character
}

func (k key) is(r rune) bool { return k.kind == keyChar && k.r == r }

// readKey reads one key press. Ctrl-C, Ctrl-D and the end of input are
// errs.ErrInterrupted.
func (t *Terminal) readKey() (key, error) {
	r, _, err := t.keys.ReadRune()
	if err != nil {
		return key{}, readErr(err)
	}
	switch r {
	case '\r', '\n':
		return key{kind: keyEnter}, nil
	case 0x7f, 0x08:
		return key{kind: keyBackspace}, nil
	case 0x03, 0x04: // Ctrl-C, Ctrl-D
		return key{}, errs.ErrInterrupted
	case 0x15:
		return key{kind: keyKillLine}, nil
	case 0x17:
		return key{kind: keyKillWord}, nil
	case 0x10: // Ctrl-P
		return key{kind: keyUp}, nil
	case 0x0e: // Ctrl-N
		return key{kind: keyDown}, nil
	case 0x01: // Ctrl-A
		return key{kind: keyHome}, nil
	case 0x05: // Ctrl-E
		return key{kind: keyEnd}, nil
	case 0x1b:
		return t.escape()
	}
	if r < 0x20 || r == utf8.RuneError {
		return key{}, nil
	}
	return key{kind: keyChar, r: r}, nil
}

// escape reads the rest of a key that starts with ESC: ESC [ or ESC O,
// parameters, then the final byte that names the key (A B C D: arrows,
// H F: Home End, ~ after 1 7 / 4 8 / 3: Home, End, Delete). An ESC with
// nothing after it in the same read is the Esc key: ignored.
func (t *Terminal) escape() (key, error) {
	if t.keys.Buffered() == 0 {
		return key{}, nil
	}
	b, err := t.keys.ReadByte()
	if err != nil {
		return key{}, readErr(err)
	}
	if b != '[' && b != 'O' {
		t.keys.UnreadByte() // Alt and a key: the key alone
		return key{}, nil
	}
	param, first := 0, true // the first number, as in ESC [ 3 ~ (Delete)
	for {
		c, err := t.keys.ReadByte()
		if err != nil {
			return key{}, readErr(err)
		}
		switch {
		case c >= '0' && c <= '9' && first:
			param = param*10 + int(c-'0')
		case c >= 0x20 && c < 0x40: // more parameters
			first = false
		case c == '~':
			switch param {
			case 1, 7:
				return key{kind: keyHome}, nil
			case 4, 8:
				return key{kind: keyEnd}, nil
			case 3:
				return key{kind: keyDelete}, nil
			}
			return key{}, nil
		case c == 'H':
			return key{kind: keyHome}, nil
		case c == 'F':
			return key{kind: keyEnd}, nil
		case c == 'A':
			return key{kind: keyUp}, nil
		case c == 'B':
			return key{kind: keyDown}, nil
		case c == 'C':
			return key{kind: keyRight}, nil
		case c == 'D':
			return key{kind: keyLeft}, nil
		case c >= 0x40 && c <= 0x7e:
			return key{}, nil
		default:
			t.keys.UnreadByte()
			return key{}, nil
		}
	}
}

// readErr is a closed terminal's end of input as ErrInterrupted.
func readErr(err error) error {
	if errors.Is(err, io.EOF) {
		return errs.ErrInterrupted
	}
	return fmt.Errorf("read the terminal: %w", err)
}
