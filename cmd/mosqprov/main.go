// Command mosqprov provisions and maintains a secured Eclipse Mosquitto broker.
package main

import (
	"os"

	"github.com/mosqprov/mosqprov/pkg/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
