package passwd

import (
	"io"
	"slices"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// An edit of the password file is planned from one walk of it (scan): the
// lines of the users it names are kept, the others are only inspected.
// The write then copies the file between those lines as it is, and puts
// each of them back, replaced or not at all (issue 12 §5: a user add in a
// 10,000-user file parses the file once and copies it once).

// scanned is what one walk of the file found.
type scanned struct {
	picks map[string]*pick
	// touched are the lines of the users the edit names (desired, removed,
	// and with Prune every user), in file order, with copies of their bytes.
	touched []Line
	// others: the file holds users the edit leaves as they are; unmanaged
	// lists them, once each, in file order, unless SkipUnmanaged.
	others    bool
	unmanaged []string
	lines     int
	// open: the last line has no line ending. Untouched, it is held here,
	// not inspected: an added user gives it its line ending, which can
	// change how the broker reads it (":" is no user, ":\n" one without
	// a name).
	open bool
	held *Line
}

// scan checks the file is text and sorts its lines: the users the edit
// names are kept (touched); every other line goes to ins as it is.
func (w *walk) scan(want []Desired, opts Options, ins *inspector) (scanned, error) {
	sc := scanned{picks: make(map[string]*pick, len(want))}
	for _, d := range want {
		sc.picks[d.Name] = &pick{}
	}
	remove := map[string]bool{}
	for _, n := range opts.Remove {
		remove[n] = true
	}
	var seen map[string]bool
	if !opts.SkipUnmanaged {
		seen = map[string]bool{}
	}
	for l := range w.lines() {
		if strings.IndexByte(l.Raw, 0) >= 0 {
			return sc, errs.Invalid("password file", "line %d holds a NUL byte: not a text password file", l.Num)
		}
		sc.lines = l.Num
		sc.open = !strings.HasSuffix(l.Raw, "\n")
		inspect := ins.add
		if sc.open {
			inspect = func(l Line) { o := owned(l); sc.held = &o }
		}
		if l.Kind != Entry {
			inspect(l)
			continue
		}
		p := sc.picks[l.Name]
		switch {
		case p != nil:
			o := owned(l)
			p.add(o)
			sc.touched = append(sc.touched, o)
		case remove[l.Name] || opts.Prune:
			sc.touched = append(sc.touched, owned(l))
		default:
			sc.others = true
			if seen != nil && !seen[l.Name] {
				name := strings.Clone(l.Name)
				seen[name] = true
				sc.unmanaged = append(sc.unmanaged, name)
			}
			inspect(l)
		}
	}
	return sc, w.err
}

// splice is one change to the file: the len bytes at off become with.
type splice struct {
	off  int64
	len  int64
	with string
}

// edited is the planned edit.
type edited struct {
	splices []splice // in file order
	users   []UserResult
	others  bool
	// changed: a line is dropped, replaced or added; size is the new
	// file's.
	changed bool
	size    int64
}

// edit plans the new file: a desired user's first line is replaced in
// place (an unchanged one is kept byte for byte), its other lines are
// dropped, removed (and, with Prune, unwanted) users' lines are dropped,
// new users are appended, and every other line stays as it was. ins gets
// the lines the edit writes, and line numbers as they are in the new file.
func edit(sc scanned, size int64, want []Desired, hashes []string, statuses []UserResult, opts Options, ins *inspector) edited {
	e := edited{others: sc.others, size: size}
	index := make(map[string]int, len(want))
	for i, d := range want {
		index[d.Name] = i
	}
	remove := map[string]bool{}
	for _, n := range opts.Remove {
		remove[n] = true
	}
	placed := make([]bool, len(want))
	removed := map[string]bool{}
	// Users removed because the desired list leaves them out (Prune), each
	// once, in file order.
	var pruned []string
	var dropped []int // old numbers of the lines dropped, in order
	type written struct {
		line Line
		old  int // its number in the old file; 0 for an appended line
	}
	var lines []written
	change := func(l Line, with string) {
		e.splices = append(e.splices, splice{off: l.off, len: int64(len(l.Raw)), with: with})
		e.size += int64(len(with)) - int64(len(l.Raw))
		e.changed = true
		if with == "" {
			dropped = append(dropped, l.Num)
		}
	}
	for _, l := range sc.touched {
		i, wanted := index[l.Name]
		switch {
		case wanted && placed[i]:
			change(l, "") // a duplicate: drop it
		case wanted:
			placed[i] = true
			if statuses[i].Status == Unchanged {
				lines = append(lines, written{l, l.Num})
				break
			}
			line := entryLine(want[i].Name, hashes[i])
			change(l, line)
			lines = append(lines, written{readLine(line, 0), l.Num})
		default: // removed, or pruned
			change(l, "")
			if !removed[l.Name] && !remove[l.Name] {
				pruned = append(pruned, l.Name)
			}
			removed[l.Name] = true
		}
	}
	// The last line keeps its missing line ending unless it was replaced
	// or dropped.
	open := sc.open && !(len(e.splices) > 0 && e.splices[len(e.splices)-1].off+e.splices[len(e.splices)-1].len == size)
	var tail strings.Builder
	kept := sc.lines - len(dropped)
	closed := false // the open last line gets its line ending
	for i, d := range want {
		if placed[i] {
			continue
		}
		if tail.Len() == 0 && open {
			closed = true
			// The last line ends where the file does: it gets its line
			// ending before the new user's line.
			tail.WriteString("\n")
		}
		line := entryLine(d.Name, hashes[i])
		tail.WriteString(line)
		lines = append(lines, written{readLine(line, 0), 0})
		e.changed = true
	}
	if tail.Len() > 0 {
		e.splices = append(e.splices, splice{off: size, with: tail.String()})
		e.size += int64(tail.Len())
	}
	// Line numbers in the new file: an old line moves up by the lines
	// dropped before it; appended lines follow the last one.
	renumber := func(old int) int {
		n, _ := slices.BinarySearch(dropped, old)
		return old - n
	}
	ins.renumber(renumber)
	if sc.held != nil {
		lines = append(lines, written{*sc.held, sc.held.Num})
	}
	next := kept
	for _, w := range lines {
		if closed && w.old == sc.lines {
			w.line = readLine(w.line.Raw+"\n", 0)
		}
		if w.old > 0 {
			w.line.Num = renumber(w.old)
		} else {
			next++
			w.line.Num = next
		}
		ins.add(w.line)
	}

	e.users = append([]UserResult(nil), statuses...)
	for _, n := range opts.Remove {
		if removed[n] {
			e.users = append(e.users, UserResult{Name: n, Status: Removed})
		} else {
			e.users = append(e.users, UserResult{Name: n, Status: Absent, Detail: "not in the file"})
		}
	}
	for _, n := range pruned {
		e.users = append(e.users, UserResult{Name: n, Status: Removed, Detail: "not in the desired list"})
	}
	for _, n := range sc.unmanaged {
		e.users = append(e.users, UserResult{Name: n, Status: Unmanaged})
	}
	return e
}

// write writes the new file to out: src copied as it is between the
// splices, through buf.
func (e edited) write(src io.ReaderAt, size int64, out io.Writer, buf []byte) error {
	var pos int64
	for _, s := range e.splices {
		if _, err := io.CopyBuffer(out, io.NewSectionReader(src, pos, s.off-pos), buf); err != nil {
			return err
		}
		if _, err := io.WriteString(out, s.with); err != nil {
			return err
		}
		pos = s.off + s.len
	}
	_, err := io.CopyBuffer(out, io.NewSectionReader(src, pos, size-pos), buf)
	return err
}
