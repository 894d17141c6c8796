package cli

import (
	"fmt"
	"github.com/mosqprov/mosqprov/pkg/system"
	"os"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// PasswordEnv is the environment variable a password may come from.
const PasswordEnv = "MOSQPROV_PASSWORD"

// ReadSecret gets a secret without it ever being in argv: from the first line
// of stdin when fromStdin, else from envVar when set, else from a hidden
// prompt (asked twice when confirm) when stdin is a terminal.
func (a *App) ReadSecret(label string, fromStdin bool, envVar string, confirm bool) (string, error) {
	return a.ReadSecretFrom("--password-stdin", label, fromStdin, envVar, confirm)
}

// ReadSecretFrom is ReadSecret for a command whose stdin flag has another
// name (backup's --passphrase-stdin), which its messages then name.
func (a *App) ReadSecretFrom(stdinFlag, label string, fromStdin bool, envVar string, confirm bool) (string, error) {
	if fromStdin {
		a.Debugf("%s: from the first line of stdin (%s)", label, stdinFlag)
		line, ok, err := system.ReadLine(stdinFlag, a.IO.In, system.MaxSecret)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errs.Invalid(stdinFlag, "nothing on standard input")
		}
		if line == "" {
			return "", errs.Invalid(stdinFlag, "the first line of standard input is empty; put the %s on it, e.g. printf '%%s\\n' \"$PW\" | mosqprov ...", label)
		}
		return line, nil
	}
	if envVar != "" {
		if v, ok := os.LookupEnv(envVar); ok {
			a.Debugf("%s: from $%s", label, envVar)
			if v == "" {
				return "", errs.Invalid(envVar, "is set but empty; set it to the %s, or unset it to be asked on the terminal", label)
			}
			return v, nil
		}
	}
	if !a.IO.InIsTerminal || a.IO.ReadHidden == nil {
		secret := "password"
		if stdinFlag == "--passphrase-stdin" {
			secret = "passphrase"
		}
		return "", errs.Invalid(label, "no %s given: stdin is not a terminal; use %s or set %s", secret, stdinFlag, envVar)
	}
	fmt.Fprintf(a.IO.ErrOut, "%s: ", label)
	first, err := a.IO.ReadHidden()
	fmt.Fprintln(a.IO.ErrOut)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", label, err)
	}
	if first == "" {
		return "", errs.Invalid(label, "nothing was typed; type it at the prompt (it is not shown), or Ctrl-C to stop")
	}
	if !confirm {
		return first, nil
	}
	fmt.Fprintf(a.IO.ErrOut, "%s (again): ", label)
	second, err := a.IO.ReadHidden()
	fmt.Fprintln(a.IO.ErrOut)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", label, err)
	}
	if first != second {
		return "", errs.Invalid(label, "the two entries differ; nothing was changed")
	}
	return first, nil
}
