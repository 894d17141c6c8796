package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mosqprov/mosqprov/pkg/conf"
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

// jsonschemaCheck validates docs against the schema with python-jsonschema
// (Draft 2020-12), a validator editors' tooling agrees with and we didn't
// write, and returns one problem per doc ("" when valid). It also checks
// the schema itself against the metaschema.
const jsonschemaCheck = `
import json, sys
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
d = json.load(sys.stdin)
Draft202012Validator.check_schema(d["schema"])
v = Draft202012Validator(d["schema"])
out = []
for doc in d["docs"]:
    e = best_match(v.iter_errors(doc))
    out.append("" if e is None else "%s: %s" % ("/".join(map(str, e.absolute_path)), e.message))
print(json.dumps(out))
`

// validateAll runs jsonschemaCheck on YAML documents.
func validateAll(t *testing.T, docs []string) []string {
	t.Helper()
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import jsonschema").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Fatal("python3 with jsonschema not found: apt-get install -y python3-jsonschema (.ci/steps/ansible.sh does)")
	}
	var in struct {
		Schema json.RawMessage `json:"schema"`
		Docs   []any           `json:"docs"`
	}
	var err error
	if in.Schema, err = os.ReadFile("../../schema/broker.schema.json"); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		var doc any
		if err := yaml.Unmarshal([]byte(d), &doc); err != nil {
			t.Fatalf("%v\n%s", err, d)
		}
		in.Docs = append(in.Docs, doc)
	}
	payload, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", jsonschemaCheck)
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jsonschema: %v\n%s", err, stderr.String())
	}
	var problems []string
	if err := json.Unmarshal(out, &problems); err != nil || len(problems) != len(docs) {
		t.Fatalf("jsonschema output %q: %v", out, err)
	}
	return problems
}

// Every example in the repository validates against the schema and loads.
func TestSchemaAcceptsExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	var names, docs []string
	for _, f := range files {
		if !strings.Contains(filepath.Base(f), "broker") {
			continue // not a spec (cloud-init, playbooks)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		names, docs = append(names, f), append(docs, string(data))
	}
	if len(docs) == 0 {
		t.Fatal("no examples found")
	}
	// The marshalled default spec is an example too (the wizard writes it).
	data, _ := Marshal(Default("pi.local"))
	names, docs = append(names, "Marshal(Default)"), append(docs, string(data))
	for i, p := range validateAll(t, docs) {
		if p != "" {
			t.Errorf("%s: schema rejects it: %s", names[i], p)
		}
	}
}

// Specs using each key added after the schema was first written
// (per-listener authentication, revoked by name and by serial, bridges,
// broker settings) pass both the Go decoder and the schema.
func TestSchemaAcceptsNewKeys(t *testing.T) {
	good := []string{
		"listeners:\n  - {type: mqtt, port: 1883, bind: 127.0.0.1, allow_anonymous: true}\n  - {type: mqtt, port: 1884, users: [alice]}\nusers: [{name: alice, password_env: A}]\n",
		"hostname: pi.local\nlisteners: [{type: mqtts, mutual_tls: true}]\nrevoked: [lost-phone, \"serial:4A:3F:9C\", \"serial:0x1f\"]\n",
		"listeners: [{type: mqtt}]\nbridges:\n  - {name: cloud, addresses: [\"cloud.example.org:8883\", \"[2001:db8::1]:8883\"], topics: [{pattern: \"sensors/#\", direction: out, qos: 1}], tls: {system_ca: true}, username: pi, password_env: P, protocol: \"5\", keepalive: 30, start_type: lazy}\n",
		"listeners: [{type: mqtt, max_connections: 50}]\nbroker: {persistence: false, autosave_interval: 3600, log_types: [error, warning], log_dest: [syslog], persistent_client_expiration: 14d}\n",
	}
	for _, doc := range good {
		s, err := Parse("b.yaml", []byte(doc))
		if err == nil {
			err = s.Validate()
		}
		if err != nil {
			t.Errorf("Go rejects %s: %v", doc, err)
		}
	}
	for i, p := range validateAll(t, good) {
		if p != "" {
			t.Errorf("schema rejects %s: %s", good[i], p)
		}
	}
}

// Specs the Go decoder rejects for shape (not cross-field rules) are
// rejected by the schema too, so an editor flags them as well.
func TestSchemaRejects(t *testing.T) {
	bad := []string{
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
		"acl: [{user: a, pattern: true, read: [a]}]",
		"service: {enable: 1}",
		"broker: {persistance: true}",
		"broker: {max_queued_messages: -1}",
		"broker: {max_packet_size: 10}",
		"broker: {memory_limit: 1000}",
		"broker: {sys_interval: \"10\"}",
		"broker: {persistent_client_expiration: 0d}",
		"broker: {persistent_client_expiration: 2 days}",
		"broker: {log_types: [errors]}",
		"broker: {log_types: []}",
		"broker: {log_dest: [file, file]}",
		"broker: {log_dest: [stdout]}",
		"listeners: [{type: mqtt, max_connections: 0}]",
		"listeners: [{type: mqtt, allow_anonymous: \"yes\"}]",
		"listeners: [{type: mqtt, users: alice}]",
		"listeners: [{type: mqtt, users: [\"\"]}]",
		"listeners: [{type: mqtt, users: [alice, alice]}]",
		"listeners: [{type: mqtt, users: [" + strings.TrimSuffix(strings.Repeat("u,", MaxUsers+1), ",") + "]}]",
		"revoked: [\"bad/name\"]",
		"revoked: [\"serial:4a:zz\"]",
		"revoked: [" + strings.TrimSuffix(strings.Repeat("\"serial:1\",", MaxRevoked+1), ",") + "]",
		"bridges: [{name: b, addresses: [\"remote:8883\"]}]",
		"bridges: [{name: b, addresses: [\"remote:8883\"], topics: [{pattern: \"#\", direction: sideways}]}]",
		"bridges: [{name: b, addresses: [" + strings.TrimSuffix(strings.Repeat("\"remote:8883\",", 17), ",") + "], topics: [{pattern: \"#\", direction: in}]}]",
		"bridges: [{name: b, addresses: [\"remote:8883\"], topics: [{pattern: \"#\", direction: in}], keepalive: 1}]",
		"names: [" + strings.TrimSuffix(strings.Repeat("a.example,", MaxNames+1), ",") + "]",
	}
	for i, p := range validateAll(t, bad) {
		if p == "" {
			t.Errorf("schema accepts %s", bad[i])
		}
		s, err := Parse("b.yaml", []byte(bad[i]))
		if err == nil {
			err = s.Validate()
		}
		if err == nil {
			t.Errorf("Go accepts %s", bad[i])
		}
	}
}

// The schema's ranges of integer settings are pkg/conf's.
func TestSchemaRanges(t *testing.T) {
	props := loadSchema(t)["properties"].(map[string]any)
	nodes := map[string]any{}
	for name, p := range props["broker"].(map[string]any)["properties"].(map[string]any) {
		nodes[name] = p
	}
	nodes["max_connections"] = props["listeners"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)["max_connections"]
	for name, r := range conf.Ranges {
		n, ok := nodes[name].(map[string]any)
		if !ok {
			t.Errorf("%s: not in the schema", name)
			continue
		}
		if n["minimum"] != float64(r.Min) || n["maximum"] != float64(r.Max) {
			t.Errorf("%s: schema %v..%v, pkg/conf %d..%d", name, n["minimum"], n["maximum"], r.Min, r.Max)
		}
	}
}

func resolve(t *testing.T, root, node map[string]any) map[string]any {
	if ref, ok := node["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		return root["$defs"].(map[string]any)[name].(map[string]any)
	}
	return node
}

// The schema's maxItems are the decoder's list caps (listCaps, the figures
// docs/reference.md's "Limits" gives), so the two can't drift: every list
// of the Go types has the same cap in both, or, in neither, is a list of
// distinct values of an enum (bounded by the enum); and every cap belongs
// to a list that exists.
func TestSchemaListCaps(t *testing.T) {
	schema := loadSchema(t)
	seen := map[string]bool{}
	walkLists(t, schema, schema, reflect.TypeOf(Spec{}), "", seen)
	for key := range listCaps {
		if !seen[key] {
			t.Errorf("listCaps has %q, which is no list of broker.yaml", key)
		}
	}
	if len(seen) < len(listCaps) {
		t.Errorf("walked %d lists, fewer than the %d caps: is the walk broken?", len(seen), len(listCaps))
	}
}

func walkLists(t *testing.T, root, node map[string]any, typ reflect.Type, path string, seen map[string]bool) {
	t.Helper()
	node = resolve(t, root, node)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Struct:
		props, _ := node["properties"].(map[string]any)
		for name, idx := range yamlFields(typ) {
			p, ok := props[name].(map[string]any)
			if !ok {
				continue // TestSchemaMatchesTypes reports it
			}
			sub := name
			if path != "" {
				sub = path + "." + name
			}
			walkLists(t, root, p, typ.Field(idx).Type, sub, seen)
		}
	case reflect.Slice:
		seen[path] = true
		want, capped := listCaps[path]
		got, has := node["maxItems"].(float64)
		items, _ := node["items"].(map[string]any)
		switch {
		case capped && (!has || int(got) != want):
			t.Errorf("%s: the decoder caps it at %d (listCaps), the schema's maxItems is %v", path, want, node["maxItems"])
		case !capped && has:
			t.Errorf("%s: the schema says maxItems %v, the decoder has no cap (listCaps)", path, got)
		case !capped && !(node["uniqueItems"] == true && items["enum"] != nil):
			t.Errorf("%s: a list without a cap: add it to listCaps (pkg/spec/decode.go), maxItems to the schema and a row to docs/reference.md's Limits", path)
		}
		walkLists(t, root, items, typ.Elem(), path+"[]", seen)
	}
}
