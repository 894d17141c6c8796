package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/errs"
)

// decodeStrict decodes data into s walking the node tree itself: yaml.v3's
// KnownFields errors carry only a line, and a person fixing a file by hand
// wants the column too. It also records where every field stands, so
// validation errors point into the file as well.
func decodeStrict(name string, data []byte, s *Spec) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Error{File: name, Pos: Pos{1, 1}, Err: errs.Invalid("spec", "the file is empty")}
		}
		return syntaxError(name, err)
	}
	// A second document ("---" and more) would be silently ignored by a
	// decoder that reads the first: refuse the file rather than half-read it.
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		if err != nil {
			return syntaxError(name, err)
		}
		return &Error{File: name, Pos: Pos{second.Line, second.Column}, Err: errs.Invalid("spec", "a second YAML document; broker.yaml holds exactly one (remove the \"---\" and what follows)")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return &Error{File: name, Pos: Pos{1, 1}, Err: errs.Invalid("spec", "the file is empty")}
		}
		root = root.Content[0]
	}
	d := &decoder{file: name, pos: s.pos, set: s.set, left: MaxValues}
	return d.decode(root, reflect.ValueOf(s).Elem(), "")
}

// syntaxError turns yaml.v3's "yaml: line N: msg" into FILE:N:1: msg. The
// parser knows no column for its syntax errors.
func syntaxError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if v, err := strconv.Atoi(n); err == nil {
				line, msg = v, after
			}
		}
	}
	pos := Pos{}
	if line > 0 {
		pos = Pos{line, 1}
	}
	return &Error{File: name, Pos: pos, Err: errs.Invalid("spec", "not valid YAML: %s", msg)}
}

type decoder struct {
	file string
	pos  map[string]Pos
	set  map[string]bool
	// left is how many more values the file may expand to; aliases is
	// whether any "*name" was followed.
	left    int
	aliases bool
}

// Limits of one spec, far above any broker's real use (docs/reference.md,
// "Limits"), so a mistaken or hostile file fails in milliseconds with one
// line instead of taking minutes and gigabytes.
const (
	// MaxValues bounds the values a file expands to, YAML aliases
	// followed: a 62 KB file with one anchored 1000-topic list referenced
	// 2000 times is two million topics.
	MaxValues = 100_000
	// MaxNames bounds names and ips (Let's Encrypt's limit of names on one
	// certificate; clients handle certificates with more poorly).
	MaxNames = 100
	// MaxUsers bounds the users of one spec; a larger fleet goes through
	// `mosqprov user import` and stays unmanaged by the spec.
	MaxUsers = 1000
	// MaxRules bounds the ACL rules of one spec.
	MaxRules = 1000
	// MaxTopics bounds the topics of one ACL rule (read, write, readwrite
	// and deny together).
	MaxTopics = 1000
	// MaxListeners bounds the listeners.
	MaxListeners = 100
	// MaxBridges bounds the bridges; each bridge's failover addresses and
	// topics have pkg/bridge's caps.
	MaxBridges = 100
	// MaxRevoked bounds `revoked:` (a CRL of 1,000 entries is about 40 KB;
	// `cert revoke` adds beyond it without the spec).
	MaxRevoked = 1000
)

// listCaps is the longest list each list field may hold.
var listCaps = map[string]int{
	"names": MaxNames, "ips": MaxNames, "users": MaxUsers, "acl": MaxRules, "listeners": MaxListeners,
	"acl[].read": MaxTopics, "acl[].write": MaxTopics, "acl[].readwrite": MaxTopics, "acl[].deny": MaxTopics,
	"bridges": MaxBridges, "bridges[].addresses": bridge.MaxAddresses, "bridges[].topics": bridge.MaxTopics,
	"listeners[].users": MaxUsers, "revoked": MaxRevoked,
}

// listCap is the cap of the list at path ("acl[3].read" -> "acl[].read").
func listCap(path string) int {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		b.WriteByte(path[i])
		if path[i] == '[' {
			for i+1 < len(path) && path[i+1] != ']' {
				i++
			}
		}
	}
	return listCaps[b.String()]
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) error {
	field := path
	if field == "" {
		field = "spec"
	}
	return &Error{File: d.file, Pos: Pos{n.Line, n.Column}, Err: errs.Invalid(field, format, args...)}
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
		d.aliases = true
	}
	if d.left--; d.left < 0 {
		why := ""
		if d.aliases {
			why = " (YAML aliases repeat what they point at)"
		}
		return d.fail(n, path, "the file expands to more than %d values%s; refusing it", MaxValues, why)
	}
	if path != "" {
		d.pos[path] = Pos{n.Line, n.Column}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // "key:" with nothing after it leaves the default
	}
	if path != "" {
		d.set[path] = true
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.decode(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.fail(n, path, "want a list, got %s", describe(n))
		}
		if max := listCap(path); max > 0 && len(n.Content) > max {
			return d.fail(n, path, "%d items; at most %d are allowed (docs/reference.md, Limits)", len(n.Content), max)
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return d.fail(n, path, "want a string, got %s", describe(n))
		}
		// Numbers and booleans are not silently turned into strings: an
		// unquoted `hash: 1234` or `name: yes` is almost certainly a mistake.
		if n.Tag != "!!str" {
			return d.fail(n, path, "want a string, got %s (quote it)", describe(n))
		}
		v.SetString(n.Value)
		return nil
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return d.fail(n, path, "want an integer, got %s", describe(n))
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			var u uint64
			if err := n.Decode(&u); err != nil {
				return d.fail(n, path, "want an integer, got %s", describe(n))
			}
			i = int64(u)
		}
		v.SetInt(i)
		return nil
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return d.fail(n, path, "want true or false, got %s", describe(n))
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return d.fail(n, path, "want true or false, got %s", describe(n))
		}
		v.SetBool(b)
		return nil
	}
	return d.fail(n, path, "unsupported field type %s", v.Type())
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return d.fail(n, path, "want a mapping of keys to values, got %s", describe(n))
	}
	fields := yamlFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			return d.fail(k, path, "merge keys (<<) are not supported")
		}
		key := k.Value
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		idx, ok := fields[key]
		if !ok {
			where := "broker.yaml"
			if path != "" {
				where = path
			}
			return d.fail(k, sub, "unknown field in %s (known: %s)", where, strings.Join(sortedKeys(fields), ", "))
		}
		if seen[key] {
			return d.fail(k, sub, "set twice")
		}
		seen[key] = true
		// decode records the value's place: that is what a problem is about.
		if err := d.decode(val, v.Field(idx), sub); err != nil {
			return err
		}
	}
	return nil
}

// yamlFields maps the yaml key of every exported field to its index.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = i
	}
	return m
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	kind := map[string]string{"!!str": "string", "!!int": "integer", "!!float": "number", "!!bool": "boolean", "!!null": "null",
		"!!timestamp": "timestamp", "!!binary": "binary"}[n.Tag]
	if kind == "" {
		kind = n.Tag
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%s %q", kind, v)
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i > 0 {
		return p[:i]
	}
	return ""
}
