package passwd

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func seedCorpus(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.passwd"))
	if len(files) == 0 {
		f.Fatal("no fixtures")
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(":::\n::a::b\n#x\n \t\r\n"))
	f.Add([]byte("fuzzuser:old\nfuzzuser:$6$\nx"))
}

// FuzzParse: any bytes parse (or are refused as binary) without a panic,
// round-trip byte for byte, and setting one user keeps every other line.
func FuzzParse(f *testing.F) {
	seedCorpus(f)
	const hash = "$7$101$NvcQIKDS1TBpqIwY$+DaA3QCdRsk4OAe4kK9heOQBIvxnjrJlr4AsblQAvFKV0LrWTh2XBUS2b+4N+TPAqQ14T0rTdsGYWg/9xzOn0g=="
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		Inspect(data)
		if err != nil {
			if !strings.Contains(string(data), "\x00") {
				t.Fatalf("refused a file without NUL: %v", err)
			}
			return
		}
		if string(file.Bytes()) != string(data) {
			t.Fatal("round trip differs")
		}
		file.Users()
		want := []Desired{{Name: "fuzzuser", Hash: hash}}
		// The walk reads through a buffer of 1 to 16 bytes here, so lines
		// are cut at every place; it must see the lines Parse sees.
		old := &walk{src: byteSource{bytes.NewReader(data)}, buffer: 1 + len(data)%16}
		var walked []Line
		for l := range old.lines() {
			walked = append(walked, owned(l))
		}
		if old.err != nil || !slices.Equal(walked, file.Lines) {
			t.Fatalf("walk (buffer %d) differs from Parse: %v\n%+v\n%+v", old.buffer, old.err, walked, file.Lines)
		}
		picks, err := old.scan(want)
		if err != nil {
			t.Fatal(err)
		}
		hashes, st := resolve(picks, want, Options{})
		var out bytes.Buffer
		if _, err := edit(old, want, hashes, st, Options{}, &out, nil); err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		n := 0
		for _, l := range back.Lines {
			if l.Kind == Entry && l.Name == "fuzzuser" {
				n++
				if l.Hash != hash {
					t.Fatalf("fuzzuser has %q", l.Hash)
				}
				continue
			}
			kept = append(kept, strings.TrimSuffix(l.Raw, "\n"))
		}
		if n != 1 {
			t.Fatalf("fuzzuser on %d lines", n)
		}
		var orig []string
		for _, l := range file.Lines {
			if !(l.Kind == Entry && l.Name == "fuzzuser") {
				orig = append(orig, strings.TrimSuffix(l.Raw, "\n"))
			}
		}
		if strings.Join(orig, "\n") != strings.Join(kept, "\n") {
			t.Fatalf("other lines changed:\n%q\n%q", orig, kept)
		}
	})
}

// FuzzParseHash: a hash that parses re-encodes to exactly its input, so
// what mosqprov accepts is what it writes.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{
		"$7$101$NvcQIKDS1TBpqIwY$+DaA3QCdRsk4OAe4kK9heOQBIvxnjrJlr4AsblQAvFKV0LrWTh2XBUS2b+4N+TPAqQ14T0rTdsGYWg/9xzOn0g==",
		"$6$kIWyFOnpMmyvPhoi$EsXxUmm6o9JDyCK98wx2iCfNw2r2TTs1vJEL+Ct64+3RWe0zltyBs4M5cpO1oYncq9Fne2tdQwh4gQ9HTULM6g==",
		"$6$laGn2JkF/OwuZx0l$GFlCAyKcNUFQsIhtMMrVyuX41xbxGPs2X0khjHUNiTOyNb3rHCBtfsBU8G/3x8hAPALddAry7mdWioPB6tKSX0",
		"plain", "", "$", "$7$$$",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// checkBase64 accepts what Go's strict decoder does, \r and \n
		// aside, for both a salt and a key.
		for _, n := range []int{saltLen, keyLen} {
			text := (n + 2) / 3 * 4
			for _, c := range []string{s, s + strings.Repeat("A", max(0, text-len(s)))} {
				got, err := base64.StdEncoding.Strict().DecodeString(c)
				want := err == nil && len(got) == n && !strings.ContainsAny(c, "\r\n")
				if ok := checkBase64(c, text, n) == nil; ok != want {
					t.Fatalf("checkBase64(%q, %d) = %v, the strict decoder says %v", c, n, ok, want)
				}
			}
		}
		h, err := ParseHash(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatal("multi-line error")
			}
			return
		}
		if h.String() != s {
			t.Fatalf("%q re-encodes as %q", s, h.String())
		}
	})
}

// byteSource is a system.Source over bytes.
type byteSource struct{ *bytes.Reader }

func (b byteSource) Size() int64 { return b.Reader.Size() }
