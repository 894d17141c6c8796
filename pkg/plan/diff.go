package plan

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/diff"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// FileDiff is what a run would do (or did) to one file, ready to show: a
// unified diff for text, a description for certificates, nothing but a
// mention for private keys, and password hashes masked.
type FileDiff struct {
	Path   string        `json:"path"`
	Action system.Action `json:"action"`
	// Diff is a unified diff ("" when only the owner or mode changes, or
	// the content is secret).
	Diff string `json:"diff,omitempty"`
	// Note says what the diff can't: "private key, content not shown",
	// "owner or mode only".
	Note string `json:"note,omitempty"`
}

// Diffs turns the file changes a System recorded into what they did, one
// per file (the state before the first change against the last content).
func Diffs(changes []system.FileChange) []FileDiff {
	return diffs(changes, nil)
}

// PlannedDiffs is Diffs of a plan, changes a DryRun recorded. A certificate
// the dry run issued has a key apply will generate afresh, so its
// fingerprint is shown as "(known after apply)", as Terraform shows values
// only apply can know, rather than one that will never exist.
func PlannedDiffs(changes []system.FileChange) []FileDiff {
	issued := map[string]bool{}
	for _, c := range changes {
		if c.Path != layout.CACert && c.Path != layout.ServerCert {
			continue // the broker's copy of the CA is issued by nothing
		}
		if certs, err := pki.ParseCertificates(c.After); err == nil {
			for _, cert := range certs {
				issued[pki.Fingerprint(cert)] = true
			}
		}
	}
	return diffs(changes, issued)
}

// diffs makes one FileDiff per file; issued holds the fingerprints to hide.
func diffs(changes []system.FileChange, issued map[string]bool) []FileDiff {
	var order []string
	last := map[string]system.FileChange{}
	first := map[string]system.FileChange{}
	for _, c := range changes {
		if _, seen := last[c.Path]; !seen {
			order = append(order, c.Path)
			first[c.Path] = c
		}
		last[c.Path] = c
	}
	var out []FileDiff
	for _, p := range order {
		c := last[p]
		before := first[p].Before
		action := c.Action
		if before == nil && action != system.Delete {
			action = system.Create
		}
		out = append(out, fileDiff(p, action, before, c, issued))
	}
	return out
}

func fileDiff(path string, action system.Action, before *system.Snapshot, change system.FileChange, issued map[string]bool) FileDiff {
	fd := FileDiff{Path: path, Action: action}
	// A streamed write (the password file) is read back only here.
	var old []byte
	if before != nil {
		var err error
		if old, err = before.Content(); err != nil {
			fd.Note = "content before the change unreadable: " + err.Error()
			return fd
		}
	}
	after, err := change.Content()
	if err != nil {
		fd.Note = "content unreadable: " + err.Error()
		return fd
	}
	if action != system.Delete && before != nil && bytes.Equal(old, after) {
		fd.Note = fmt.Sprintf("owner or mode only (was %04o)", before.Mode)
		return fd
	}
	switch {
	case path == state.File:
		fd.Note = "hashes of the files apply manages, for `mosqprov doctor`"
		return fd
	case isPrivateKey(old) || isPrivateKey(after):
		fd.Note = "private key, content not shown"
		return fd
	case isCertificate(old) || isCertificate(after):
		old, after = describeCerts(old, nil), describeCerts(after, issued)
		fd.Note = "certificate, described"
	case path == layout.PasswordFile:
		old, after = maskPair(old, after)
		fd.Note = "password hashes masked"
	case path == bridge.File:
		old, after = bridge.MaskPasswords(old, after)
		fd.Note = "remote passwords masked"
	}
	oldName, newName := "a"+path, "b"+path
	if before == nil {
		oldName = "/dev/null"
	}
	if action == system.Delete {
		newName = "/dev/null"
	}
	fd.Diff = string(diff.Diff(oldName, old, newName, after))
	return fd
}

func isPrivateKey(b []byte) bool { return bytes.Contains(b, []byte("PRIVATE KEY-----")) }
func isCertificate(b []byte) bool {
	return bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----"))
}

// describeCerts replaces PEM certificates by lines a person can compare:
// subject, names, key, validity and fingerprint (unless in unknown).
func describeCerts(b []byte, unknown map[string]bool) []byte {
	if len(b) == 0 {
		return nil
	}
	certs, err := pki.ParseCertificates(b)
	if err != nil {
		return []byte("(not a readable certificate)\n")
	}
	var sb strings.Builder
	for _, c := range certs {
		fmt.Fprintf(&sb, "subject: %s\n", c.Subject.String())
		fmt.Fprintf(&sb, "issuer: %s\n", c.Issuer.String())
		if sans := pki.SANs(c); len(sans) > 0 {
			fmt.Fprintf(&sb, "names: %s\n", strings.Join(sans, " "))
		}
		fmt.Fprintf(&sb, "key: %s\n", pki.KeyTypeOf(c.PublicKey))
		fmt.Fprintf(&sb, "valid: %s to %s\n", c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
		fp := pki.Fingerprint(c)
		if unknown[fp] {
			fp = "(known after apply)"
		}
		fmt.Fprintf(&sb, "sha256: %s\n", fp)
	}
	return []byte(sb.String())
}

// maskPair hides the hash of every "user:hash" line of a password file,
// keeping its scheme ($7$, $6$), so a diff still shows which users are
// added, removed, or get a new hash, and never a hash. Every other line
// that could hold a secret is masked too: a commented-out user line
// ("#bob:hunter2") keeps only what stands before its ':', and a line
// without ':' that the broker skips (a password pasted on a line of its
// own) is not shown at all. Blank lines and comments without ':' are kept.
func maskPair(old, new []byte) ([]byte, []byte) {
	oldHash := map[string]string{}
	for _, e := range entries(old) {
		oldHash[e.name] = e.hash
	}
	masked := func(b []byte, fresh func(name, hash string) bool) []byte {
		var out strings.Builder
		for _, e := range entries(b) {
			if !e.entry {
				out.WriteString(maskOther(e.line, e.eol))
				continue
			}
			label := "(hash masked)"
			if fresh(e.name, e.hash) {
				label = "(new hash masked)"
			}
			out.WriteString(e.name + ":" + scheme(e.hash) + label + e.eol)
		}
		return []byte(out.String())
	}
	return masked(old, func(string, string) bool { return false }),
		masked(new, func(name, hash string) bool { h, ok := oldHash[name]; return ok && h != hash })
}

type pwLine struct {
	line, name, hash, eol string
	entry                 bool
}

// entries reads the file the way the broker does (passwd.Parse), so every
// line the broker takes as a user is masked.
func entries(b []byte) []pwLine {
	f, err := passwd.Parse(b)
	if err != nil {
		return []pwLine{{line: "(not a text password file)\n"}}
	}
	out := make([]pwLine, 0, len(f.Lines))
	for _, l := range f.Lines {
		body := strings.TrimRight(l.Raw, "\r\n")
		pl := pwLine{line: l.Raw, eol: l.Raw[len(body):]}
		if l.Kind == passwd.Entry {
			pl.name, pl.hash, pl.entry = l.Name, l.Hash, true
		}
		out = append(out, pl)
	}
	return out
}

// maskOther masks a password-file line the broker reads no user from.
func maskOther(line, eol string) string {
	body := strings.TrimSuffix(line, eol)
	switch {
	case strings.TrimSpace(body) == "":
		return line
	case strings.HasPrefix(strings.TrimSpace(body), "#"):
		if before, _, ok := strings.Cut(body, ":"); ok {
			return before + ":(masked)" + eol
		}
		return line
	}
	return "(line masked: the broker reads no user from it)" + eol
}

func scheme(hash string) string {
	if strings.HasPrefix(hash, "$") {
		if j := strings.Index(hash[1:], "$"); j >= 0 {
			return hash[:j+2]
		}
	}
	return ""
}
