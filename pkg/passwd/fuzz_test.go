package passwd

import (
	"bytes"
	"encoding/base64"
	"iter"
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
		// The planned edit gives the bytes, users and findings the
		// previous release's edit of the whole text gives, for a desired
		// user, a removed one, and with Prune and SkipUnmanaged.
		var victim string
		if e := file.Entries(); len(e) > 0 {
			victim = e[len(e)/2].Name
		}
		var out bytes.Buffer
		usable := victim != "fuzzuser" && ValidateLineName(victim) == nil
		both := want
		if usable && ValidateName(victim) == nil {
			both = append([]Desired{{Name: victim, Hash: hash}}, want...)
		}
		for _, c := range []struct {
			want []Desired
			opts Options
		}{
			{want, Options{}},
			{want, Options{Remove: []string{victim}}},
			{want, Options{Prune: true}},
			{both, Options{SkipUnmanaged: true, Remove: []string{"nobody-here"}}},
		} {
			want, opts := c.want, c.opts
			if !usable {
				opts.Remove = nil
			}
			got, gotUsers, findings := editStreamed(t, old, data, want, opts)
			ref, refUsers := referenceEdit(string(data), want, old, opts)
			if string(got) != string(ref) {
				t.Fatalf("options %+v: edit wrote\n%q\nthe reference\n%q", opts, got, ref)
			}
			if !slices.Equal(gotUsers, refUsers) {
				t.Fatalf("options %+v: users %+v, the reference %+v", opts, gotUsers, refUsers)
			}
			if refFindings := Inspect(ref); !slices.Equal(findings, refFindings) && !(len(findings) == 0 && len(refFindings) == 0) {
				t.Fatalf("options %+v: findings\n%+v\nInspect of the result\n%+v", opts, findings, refFindings)
			}
			if len(want) == 1 && len(opts.Remove) == 0 && !opts.Prune {
				out.Reset()
				out.Write(got)
			}
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

// editStreamed runs the edit as Converge does, on old.
func editStreamed(t *testing.T, old *walk, data []byte, want []Desired, opts Options) ([]byte, []UserResult, []Finding) {
	t.Helper()
	ins := newInspector(0)
	sc, err := old.scan(want, opts, ins)
	if err != nil {
		t.Fatal(err)
	}
	hashes, st := resolve(sc.picks, want, opts)
	e := edit(sc, int64(len(data)), want, hashes, st, opts, ins)
	var out bytes.Buffer
	if err := e.write(bytes.NewReader(data), int64(len(data)), &out, make([]byte, 1+len(data)%7)); err != nil {
		t.Fatal(err)
	}
	if int64(out.Len()) != e.size {
		t.Fatalf("edit said %d bytes, wrote %d", e.size, out.Len())
	}
	if e.changed != (out.String() != string(data)) {
		t.Fatalf("edit says changed=%v, the bytes say otherwise", e.changed)
	}
	findings := ins.findings(func() iter.Seq[Line] { return lines(out.String()) })
	return out.Bytes(), e.users, findings
}

// referenceEdit is the edit of mosqprov 0.x before it streamed (issue 12
// §5): the whole text in memory, one buffer out. The statuses come from
// resolve on old's lines, as Converge's.
func referenceEdit(text string, want []Desired, old *walk, opts Options) (out []byte, users []UserResult) {
	sc, _ := old.scan(want, opts, newInspector(0))
	hashes, statuses := resolve(sc.picks, want, opts)
	index := make(map[string]int, len(want))
	for i, d := range want {
		index[d.Name] = i
	}
	remove := map[string]bool{}
	for _, n := range opts.Remove {
		remove[n] = true
	}
	placed := map[string]bool{}
	removed := map[string]bool{}
	var pruned, unmanaged []string
	var seen map[string]bool
	if !opts.SkipUnmanaged {
		seen = map[string]bool{}
	}
	for l := range lines(text) {
		if l.Kind != Entry {
			out = append(out, l.Raw...)
			continue
		}
		i, wanted := index[l.Name]
		switch {
		case wanted && placed[l.Name]:
		case wanted:
			placed[l.Name] = true
			if statuses[i].Status == Unchanged {
				out = append(out, l.Raw...)
			} else {
				out = append(out, entryLine(l.Name, hashes[i])...)
			}
		case remove[l.Name] || opts.Prune:
			if !removed[l.Name] && !remove[l.Name] {
				pruned = append(pruned, l.Name)
			}
			removed[l.Name] = true
		default:
			if seen != nil && !seen[l.Name] {
				seen[l.Name] = true
				unmanaged = append(unmanaged, l.Name)
			}
			out = append(out, l.Raw...)
		}
	}
	for i, d := range want {
		if placed[d.Name] {
			continue
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, entryLine(d.Name, hashes[i])...)
	}
	users = append([]UserResult(nil), statuses...)
	for _, n := range opts.Remove {
		if removed[n] {
			users = append(users, UserResult{Name: n, Status: Removed})
		} else {
			users = append(users, UserResult{Name: n, Status: Absent, Detail: "not in the file"})
		}
	}
	for _, n := range pruned {
		users = append(users, UserResult{Name: n, Status: Removed, Detail: "not in the desired list"})
	}
	for _, n := range unmanaged {
		users = append(users, UserResult{Name: n, Status: Unmanaged})
	}
	return out, users
}
