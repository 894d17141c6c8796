// Package templates holds the text templates mosqprov renders (the broker's
// configuration, the ACL file), embedded in the binary so a copied binary
// needs no other file.
package templates

import "embed"

// FS holds every *.tmpl of this folder.
//
//go:embed *.tmpl
var FS embed.FS
