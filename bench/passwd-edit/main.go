// Command passwd-edit is bench/passwd.sh's measure of the password-file
// edit alone: `user add` (a password on stdin) or `user rm` of one user
// through pkg/passwd and pkg/system, exactly as mosqprov makes it (one
// read, the planned splices, the atomic write with its fsyncs), in a
// program that links nothing else. Its time next to mosqprov's is what the
// rest of mosqprov costs a process start; next to mosquitto_passwd's, what
// the edit costs against the broker's own tool.
//
//	passwd-edit ROOT add NAME ITERATIONS < password
//	passwd-edit ROOT rm NAME
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/system"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "passwd-edit:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: passwd-edit ROOT add NAME ITERATIONS < password | passwd-edit ROOT rm NAME")
	}
	sys := system.NewReal(args[0])
	opts := passwd.Options{SkipUnmanaged: true}
	var want []passwd.Desired
	switch args[1] {
	case "add":
		if len(args) != 4 {
			return fmt.Errorf("add needs NAME and ITERATIONS")
		}
		n, err := strconv.Atoi(args[3])
		if err != nil {
			return fmt.Errorf("iterations: %w", err)
		}
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			return fmt.Errorf("password on stdin: %w", err)
		}
		opts.Iterations = n
		want = []passwd.Desired{{Name: args[2], Password: strings.TrimSuffix(line, "\n")}}
	case "rm":
		opts.Remove = []string{args[2]}
	default:
		return fmt.Errorf("%q: add or rm", args[1])
	}
	res, err := passwd.Converge(sys, layout.PasswordFile, want, opts)
	if err != nil {
		return err
	}
	fmt.Println(res.Action)
	return nil
}
