package passwd

import (
	"bytes"
	"errors"
	"io"
	"iter"
	"strings"
	"unsafe"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// A Converge reads the password file through one small buffer: a walk of
// its lines (edit.go's scan), then a copy into the new file, and a second
// walk only when two lines' user names hash alike. A 10,000-user file is
// never held in memory (issue 12 §5).

// readBuffer is the buffer a walk reads the file through; a longer line
// grows it. A small one, reused by every walk, costs a few more reads but
// fewer fresh pages, and on a VM a fresh page costs more than a read.
const readBuffer = 16 << 10

// walk is a Source read line by line. Its error is that of the last walk.
type walk struct {
	src system.Source
	err error
	// buffer is the first read buffer's size (readBuffer when 0; tests
	// make it tiny to cut lines at every place).
	buffer int
	buf    []byte // kept from one walk to the next
}

// emptySource is the file that doesn't exist yet.
type emptySource struct{}

func (emptySource) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }
func (emptySource) Size() int64                       { return 0 }

// lines yields the file's lines as lines(text) does, each a view of the
// read buffer valid only until the next line: a caller clones what it
// keeps (owned). A read error ends the walk, in w.err.
func (w *walk) lines() iter.Seq[Line] {
	return func(yield func(Line) bool) {
		w.err = nil
		size := w.src.Size()
		first := int64(readBuffer)
		if w.buffer > 0 {
			first = int64(w.buffer)
		}
		if int64(len(w.buf)) < min(first, max(size, 1)) {
			w.buf = make([]byte, min(first, max(size, 1)))
		}
		buf := w.buf
		defer func() { w.buf = buf }()
		var off int64      // file offset of buf[0]
		start, end := 0, 0 // buf[start:end] is read and not yet yielded
		for num := 1; ; num++ {
			i := bytes.IndexByte(buf[start:end], '\n')
			for i < 0 && off+int64(end) < size {
				// Keep the partial line, at the front; grow for a long one.
				if start > 0 {
					copy(buf, buf[start:end])
					off += int64(start)
					end -= start
					start = 0
				}
				if end == len(buf) {
					buf = append(buf, make([]byte, len(buf))...)
				}
				n, err := w.src.ReadAt(buf[end:min(len(buf), end+int(size-off-int64(end)))], off+int64(end))
				end += n
				if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
					if errors.Is(err, io.EOF) {
						err = errors.New("it got shorter while it was read")
					}
					w.err = err
					return
				}
				i = bytes.IndexByte(buf[start:end], '\n')
			}
			n := i + 1
			if i < 0 {
				n = end - start
			}
			if n == 0 {
				return
			}
			l := readLine(unsafe.String(&buf[start], n), num)
			l.off = off + int64(start)
			start += n
			if !yield(l) {
				return
			}
		}
	}
}

// owned is l with its own copies of the walk's bytes.
func owned(l Line) Line {
	o := readLine(strings.Clone(l.Raw), l.Num)
	o.off = l.off
	return o
}
