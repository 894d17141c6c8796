package acl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"text/template"

	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/templates"
)

// Parse reads an ACL file the way mosquitto 2.0 does (security_default.c):
// trailing blanks dropped, a line starting with '#' is a comment, words are
// split on spaces, `topic [ACCESS] TOPIC` (no access means readwrite; the
// topic is the rest of the line, trimmed), `user NAME` (the rest of the
// line) starts a user's rules, `pattern [ACCESS] TOPIC` applies to everyone;
// topic lines before the first user line are for anonymous clients.
// A hand-written file reads back into the same rules; comments are dropped.
func Parse(data []byte) (*File, error) {
	f := &File{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	user := ""
	haveUser := false
	index := map[string]int{}
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r\n\v\f")
		if strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(strings.TrimLeft(line, " "), " ")
		bad := func(format string, args ...any) error {
			return errs.Invalid(fmt.Sprintf("ACL file line %d", n), format, args...)
		}
		switch word {
		case "":
			continue
		case "user":
			name := strings.Trim(rest, " \t")
			// A name already in the file is read whatever it holds, as long
			// as it can stand in the file; new rules get ValidateUser.
			if err := passwd.ValidateLineName(name); err != nil {
				return nil, bad("%v", err)
			}
			user, haveUser = name, true
		case "topic", "pattern":
			rest = strings.TrimLeft(rest, " ")
			accessWord, topic, found := strings.Cut(rest, " ")
			access := AccessReadWrite
			if found {
				a, err := ParseAccess(accessWord)
				if err != nil {
					return nil, bad("%v", err)
				}
				access = a
				topic = strings.Trim(topic, " \t")
			} else {
				topic = accessWord
			}
			r := Rule{Kind: KindAnonymous, Access: access, Topic: topic}
			switch {
			case word == "pattern":
				r.Kind = KindPattern
			case haveUser:
				r.Kind, r.User = KindUser, user
			}
			if err := f.merge(r, index); err != nil {
				return nil, bad("%v", err)
			}
		default:
			return nil, bad("%q is not a topic, pattern or user line", printable(line))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// merge adds r as the broker would combine it with a rule for the same
// subject and topic: a deny wins (deny rules are checked first), read and
// write add up to readwrite. index maps Key to the rule's place in f.Rules,
// so reading a large file stays linear.
func (f *File) merge(r Rule, index map[string]int) error {
	if err := r.Validate(); err != nil {
		return err
	}
	i, seen := index[r.Key()]
	if !seen {
		index[r.Key()] = len(f.Rules)
		f.Rules = append(f.Rules, r)
		return nil
	}
	old := &f.Rules[i]
	switch {
	case old.Access == AccessDeny || r.Access == AccessDeny:
		old.Access = AccessDeny
	case old.Access != r.Access:
		old.Access = AccessReadWrite
	}
	return nil
}

func printable(s string) string {
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// aclTemplate is parsed on first use, not at every process start.
var aclTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("acl.tmpl").
		Option("missingkey=error").
		ParseFS(templates.FS, "acl.tmpl"))
})

type userRules struct {
	Name  string
	Rules []Rule
}

// Render validates f and renders it.
func Render(f *File) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	data := struct {
		Anonymous, Patterns []Rule
		Users               []userRules
	}{}
	for _, r := range f.Sorted() {
		switch r.Kind {
		case KindAnonymous:
			data.Anonymous = append(data.Anonymous, r)
		case KindPattern:
			data.Patterns = append(data.Patterns, r)
		case KindUser:
			if n := len(data.Users); n == 0 || data.Users[n-1].Name != r.User {
				data.Users = append(data.Users, userRules{Name: r.User})
			}
			u := &data.Users[len(data.Users)-1]
			u.Rules = append(u.Rules, r)
		}
	}
	var buf bytes.Buffer
	if err := aclTemplate().Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render ACL file: %w", err)
	}
	return buf.Bytes(), nil
}

// Load reads the ACL file at path; a missing file has no rules.
func Load(sys system.System, path string) (*File, error) {
	data, err := sys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ACL file %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("ACL file %s: %w", path, err)
	}
	return f, nil
}

// Write converges the ACL file at path to f: owned by the broker's user,
// 0600, written only on a difference. A changed file needs a reload: the
// broker re-reads it on SIGHUP.
func Write(sys system.System, path string, f *File) (system.Result, error) {
	var res system.Result
	data, err := Render(f)
	if err != nil {
		return res, err
	}
	attr, _ := layout.BrokerSecret(sys)
	action, err := sys.WriteFile(path, data, attr)
	if err != nil {
		return res, fmt.Errorf("write ACL file: %w", err)
	}
	res.Add(system.NewChange("ACL file", path, action, ""))
	if action.Changed() {
		res.Needs(system.NeedReload)
	}
	return res, nil
}

// Update locks the ACL file, reads it, lets edit change the rules and
// writes the result, so two commands at once can't lose a rule. The edit
// sees the current rules; an error from it changes nothing.
func Update(sys system.System, path string, edit func(*File) error) (*File, system.Result, error) {
	if dir := filepath.Dir(path); !layout.Exists(sys, dir) {
		if _, err := sys.EnsureDir(dir, system.Attr{Mode: 0o755}); err != nil {
			return nil, system.Result{}, err
		}
	}
	unlock, err := sys.Lock(path)
	if err != nil {
		return nil, system.Result{}, err
	}
	defer unlock()
	f, err := Load(sys, path)
	if err != nil {
		return nil, system.Result{}, err
	}
	if err := edit(f); err != nil {
		return nil, system.Result{}, err
	}
	res, err := Write(sys, path, f)
	return f, res, err
}
