package conf

import (
	"bytes"
	"fmt"
	"sync"
	"text/template"

	"github.com/mosqprov/mosqprov/templates"
)

// Header is the first line of every file mosqprov renders; it marks the
// file as ours.
const Header = "# Managed by mosqprov: hand edits are overwritten."

// confTemplate is parsed on first use, not at every process start.
var confTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("mosquitto.conf.tmpl").
		Option("missingkey=error").
		ParseFS(templates.FS, "mosquitto.conf.tmpl"))
})

// Render validates cfg (after WithDefaults) and renders it.
func Render(cfg Config) ([]byte, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := confTemplate().Execute(&buf, cfg); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	return buf.Bytes(), nil
}

// IsManaged reports whether data is a file mosqprov rendered.
func IsManaged(data []byte) bool {
	return bytes.HasPrefix(data, []byte(Header+"\n"))
}
