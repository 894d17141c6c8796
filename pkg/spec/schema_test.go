package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The JSON Schema editors use (schema/broker.schema.json) must describe the
// same fields as the Go types, with the same defaults, and accept every
// example the project ships.

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../schema/broker.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchemaMatchesTypes(t *testing.T) {
	schema := loadSchema(t)
	compareType(t, schema, schema, reflect.TypeOf(Spec{}), "broker.yaml")
}

func compareType(t *testing.T, root, node map[string]any, typ reflect.Type, path string) {
	t.Helper()
	node = resolve(t, root, node)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Struct:
		if node["additionalProperties"] != false {
			t.Errorf("%s: schema must set additionalProperties: false (the decoder rejects unknown keys)", path)
		}
		props, _ := node["properties"].(map[string]any)
		fields := yamlFields(typ)
		for name, idx := range fields {
			p, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s.%s: in the Go types, missing from the schema", path, name)
				continue
			}
			if _, ok := p["description"]; !ok {
				t.Errorf("%s.%s: schema has no description", path, name)
			}
			compareType(t, root, p, typ.Field(idx).Type, path+"."+name)
		}
		for name := range props {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s: in the schema, missing from the Go types", path, name)
			}
		}
	case reflect.Slice:
		if node["type"] != "array" {
			t.Errorf("%s: Go has a list, schema has type %v", path, node["type"])
		}
		items, _ := node["items"].(map[string]any)
		compareType(t, root, items, typ.Elem(), path+"[]")
	case reflect.String:
		if node["type"] != "string" && node["enum"] == nil {
			t.Errorf("%s: Go has a string, schema has type %v", path, node["type"])
		}
	case reflect.Int:
		if node["type"] != "integer" {
			t.Errorf("%s: Go has an integer, schema has type %v", path, node["type"])
		}
	case reflect.Bool:
		if node["type"] != "boolean" {
			t.Errorf("%s: Go has a boolean, schema has type %v", path, node["type"])
		}
	}
}

// The defaults the schema documents are the ones SetDefaults fills in.
func TestSchemaDefaults(t *testing.T) {
	schema := loadSchema(t)
	s := &Spec{}
	s.SetDefaults()
	var generic map[string]any
	data, _ := json.Marshal(s)
	json.Unmarshal(data, &generic)
	props := schema["properties"].(map[string]any)
	for _, group := range []string{"tls", "service", "package"} {
		sub := props[group].(map[string]any)["properties"].(map[string]any)
		for name, p := range sub {
			d, ok := p.(map[string]any)["default"]
			if !ok {
				t.Errorf("%s.%s: schema has no default", group, name)
				continue
			}
			got := generic[group].(map[string]any)[name]
			if fmt.Sprint(d) != fmt.Sprint(got) {
				t.Errorf("%s.%s: schema default %v, Go default %v", group, name, d, got)
			}
		}
	}
	for _, name := range []string{"allow_anonymous", "prune_users"} {
		if d := props[name].(map[string]any)["default"]; fmt.Sprint(d) != fmt.Sprint(generic[name]) {
			t.Errorf("%s: schema default %v, Go default %v", name, d, generic[name])
		}
	}
	for _, l := range []struct {
		typ  string
		port int
	}{{MQTT, 1883}, {MQTTS, 8883}, {WS, 8080}, {WSS, 9443}} {
		if DefaultPort(l.typ) != l.port || !strings.Contains(fmt.Sprint(props["listeners"]), fmt.Sprint(l.port)) {
			t.Errorf("listener %s: default port %d not documented", l.typ, l.port)
		}
	}
}

// Every example in the repository validates against the schema and loads.
func TestSchemaAcceptsExamples(t *testing.T) {
	schema := loadSchema(t)
	files, _ := filepath.Glob("../../examples/*.yaml")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(filepath.Base(f), "broker") {
			continue // not a spec (cloud-init, playbooks)
		}
		n++
		if err := validate(schema, schema, doc, "broker.yaml"); err != nil {
			t.Errorf("%s: schema rejects it: %v", f, err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if n == 0 {
		t.Fatal("no examples found")
	}
	// The marshalled default spec is an example too (the wizard writes it).
	data, _ := Marshal(Default("pi.local"))
	var doc any
	yaml.Unmarshal(data, &doc)
	if err := validate(schema, schema, doc, "broker.yaml"); err != nil {
		t.Errorf("Marshal(Default): schema rejects it: %v\n%s", err, data)
	}
}

// Specs the Go decoder rejects for shape (not cross-field rules) are
// rejected by the schema too, so an editor flags them as well.
func TestSchemaRejects(t *testing.T) {
	schema := loadSchema(t)
	for _, y := range []string{
		"listners: []",
		"tls: {key_typ: rsa-2048}",
		"tls: {server_days: 3650}",
		"tls: {min_version: tlsv1.1}",
		"listeners: [{type: http}]",
		"listeners: [{type: mqtt, port: 70000}]",
		"listeners: [{port: 1883}]",
		"allow_anonymous: \"yes\"",
		"users: [{name: a}]",
		"users: [{name: a, password_env: A, hash: \"" + hash7 + "\"}]",
		"users: [{name: \"a:b\", password_env: A}]",
		"users: [{name: a, hash: \"$6$rounds=5000$x$y\"}]",
		"acl: [{user: a, read: [\"a\\nuser root\"]}]",
		"service: {enable: 1}",
	} {
		var doc any
		if err := yaml.Unmarshal([]byte(y), &doc); err != nil {
			t.Fatal(err)
		}
		if err := validate(schema, schema, doc, "broker.yaml"); err == nil {
			t.Errorf("schema accepts %s", y)
		}
		s, err := Parse("b.yaml", []byte(y))
		if err == nil {
			err = s.Validate()
		}
		if err == nil {
			t.Errorf("Go accepts %s", y)
		}
	}
}

// knownKeywords are the only JSON Schema keywords the schema may use: the
// validator below implements exactly these, so none is silently ignored.
var knownKeywords = map[string]bool{
	"$schema": true, "$id": true, "$defs": true, "$ref": true, "title": true, "description": true, "default": true,
	"type": true, "properties": true, "additionalProperties": true, "required": true, "enum": true,
	"items": true, "minItems": true, "minimum": true, "maximum": true, "minLength": true, "maxLength": true,
	"pattern": true, "oneOf": true,
}

func TestSchemaUsesKnownKeywords(t *testing.T) {
	var walk func(n map[string]any, where string, inProps bool)
	walk = func(n map[string]any, where string, inProps bool) {
		for k, v := range n {
			if !inProps && !knownKeywords[k] {
				t.Errorf("%s: keyword %q is not implemented by the test validator", where, k)
			}
			switch v := v.(type) {
			case map[string]any:
				walk(v, where+"/"+k, !inProps && (k == "properties" || k == "$defs"))
			case []any:
				for _, e := range v {
					if m, ok := e.(map[string]any); ok {
						walk(m, where+"/"+k, false)
					}
				}
			}
		}
	}
	walk(loadSchema(t), "#", false)
}

func resolve(t *testing.T, root, node map[string]any) map[string]any {
	if ref, ok := node["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		return root["$defs"].(map[string]any)[name].(map[string]any)
	}
	return node
}

// uEscape finds ECMA-262 \uXXXX escapes; validate turns them into RE2's \x{XXXX}.
var uEscape = regexp.MustCompile(`\\u([0-9a-fA-F]{4})`)

func validate(root, node map[string]any, v any, path string) error {
	node = resolve(nil, root, node)
	if e, ok := node["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if fmt.Sprint(x) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v not in %v", path, v, e)
		}
	}
	switch node["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: not an object", path)
		}
		props, _ := node["properties"].(map[string]any)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, ok := props[k].(map[string]any)
			if !ok {
				if node["additionalProperties"] == false {
					return fmt.Errorf("%s.%s: not allowed", path, k)
				}
				continue
			}
			if err := validate(root, p, m[k], path+"."+k); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: not an array", path)
		}
		if min, ok := node["minItems"].(float64); ok && float64(len(a)) < min {
			return fmt.Errorf("%s: fewer than %v items", path, min)
		}
		items, _ := node["items"].(map[string]any)
		for i, e := range a {
			if err := validate(root, items, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: not a string", path)
		}
		if min, ok := node["minLength"].(float64); ok && float64(len([]rune(s))) < min {
			return fmt.Errorf("%s: too short", path)
		}
		if max, ok := node["maxLength"].(float64); ok && float64(len([]rune(s))) > max {
			return fmt.Errorf("%s: too long", path)
		}
		if p, ok := node["pattern"].(string); ok {
			re := regexp.MustCompile(uEscape.ReplaceAllString(p, `\x{$1}`))
			if !re.MatchString(s) {
				return fmt.Errorf("%s: %q does not match %s", path, s, p)
			}
		}
	case "integer":
		i, ok := v.(int)
		if !ok {
			return fmt.Errorf("%s: not an integer", path)
		}
		if min, ok := node["minimum"].(float64); ok && float64(i) < min {
			return fmt.Errorf("%s: below %v", path, min)
		}
		if max, ok := node["maximum"].(float64); ok && float64(i) > max {
			return fmt.Errorf("%s: above %v", path, max)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: not a boolean", path)
		}
	}
	if m, ok := v.(map[string]any); ok {
		req, _ := node["required"].([]any)
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				return fmt.Errorf("%s: %s is required", path, r)
			}
		}
	}
	if one, ok := node["oneOf"].([]any); ok {
		n := 0
		for _, sub := range one {
			if validate(root, sub.(map[string]any), v, path) == nil {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: matches %d of oneOf, want exactly 1", path, n)
		}
	}
	return nil
}
