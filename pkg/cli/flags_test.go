package cli

import "flag"

var update = flag.Bool("update", false, "rewrite testscript golden output")
