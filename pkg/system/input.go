package system

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// Caps on what mosqprov reads from its caller. mosqprov runs as root, often
// unattended, so no input may make it allocate without bound: each read
// stops one byte past its cap and fails with one line naming the input.
// The figures are far above real use (docs/reference.md, "Limits") and low
// enough that plan, apply and user add stay under 100 MiB of memory
// whatever they are given (bench/memory.sh measures it).
const (
	// MaxSpec is the largest broker.yaml: the article's spec is 2 KiB, and
	// one with its 1,000 users (the most a spec may list) given by hash is
	// about 200 KiB. The YAML parser holds about 100 bytes per value, and a
	// file of "a," is a value every 2 bytes: 256 KiB keeps that near 30 MiB.
	MaxSpec = 256 << 10
	// MaxSecret is the longest line read from stdin for a password (MQTT
	// allows 65,535 bytes).
	MaxSecret = 64 << 10
	// MaxImport is the largest `user import` list: 100,000 users of 160
	// bytes each.
	MaxImport = 16 << 20
	// MaxPEM is the largest certificate, chain or key file `cert import`
	// reads (a fullchain.pem is about 5 KiB), and the largest file
	// broker.yaml names (password_file, a bridge's TLS files).
	MaxPEM = 1 << 20
	// MaxManaged is the largest file mosqprov reads back from the system it
	// manages (password file, ACL file, configuration, certificates, a
	// PKCS#12 bundle): a password file of 45,000 pbkdf2 users. `user add`
	// on a password file holds about 13 times its size at its peak, so
	// this keeps it under 100 MiB (bench/memory.sh).
	MaxManaged = 6 << 20
)

// ReadInputFile reads the caller's own file at path (not under --root): a
// spec given with -f, a password_file, a `user import` list, a certificate
// to import. It refuses a folder and anything over max bytes, /dev/zero
// included, with an input error (exit 3) naming field and path.
func ReadInputFile(field, path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, errs.Invalid(field, "%s is a folder, not a file", path)
	}
	return ReadInput(field, path, f, max)
}

// ReadInput reads all of r (named name in errors) when it holds at most
// max bytes, and fails without reading further otherwise.
func ReadInput(field, name string, r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, syscall.EISDIR) {
			return nil, errs.Invalid(field, "%s is a folder, not a file", name)
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, errs.Invalid(field, "%s is larger than %s; refusing to read it", name, Size(max))
	}
	return data, nil
}

// ReadLine reads the first line of r without its line ending, refusing a
// line longer than max bytes before reading more of it (a password piped
// from a 2 GB file must not be held in memory). ok is false when r held
// nothing at all.
func ReadLine(field string, r io.Reader, max int) (line string, ok bool, err error) {
	br := bufio.NewReader(r)
	var buf []byte
	for {
		c, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", len(buf) > 0, fmt.Errorf("read %s: %w", field, err)
		}
		if c == '\n' {
			return strings.TrimRight(string(buf), "\r"), true, nil
		}
		if len(buf) == max {
			return "", true, errs.Invalid(field, "the line is longer than %s; refusing to read it", Size(int64(max)))
		}
		buf = append(buf, c)
	}
	return strings.TrimRight(string(buf), "\r"), len(buf) > 0, nil
}

// Size writes n bytes the way the limits are documented (4 MiB, 64 KiB).
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
