package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// desireBridges resolves the spec's bridges: passwords from the environment
// or files, TLS files read (on the machine running mosqprov, like the -f
// spec), the default client id from the host, and adds the bridges `mosqprov
// bridge add` made that the spec doesn't name. Everything is validated here,
// before the first write.
func desireBridges(sys system.System, s *spec.Spec, o Options) ([]bridge.Bridge, error) {
	var out []bridge.Bridge
	named := map[string]bool{}
	for i, sb := range s.Bridges {
		f := fmt.Sprintf("bridges[%d]", i)
		b := sb.Model()
		named[b.Name] = true
		switch {
		case sb.PasswordEnv != "":
			v, ok := o.LookupEnv(sb.PasswordEnv)
			if !ok {
				return nil, s.At(f+".password_env", errs.Invalid(f+".password_env", "the environment variable %s (remote password of bridge %q) is not set", sb.PasswordEnv, b.Name))
			}
			b.Password = v
		case sb.PasswordFile != "":
			pw, err := secretFromFile(o, s, f+".password_file", sb.PasswordFile)
			if err != nil {
				return nil, err
			}
			b.Password = pw
		}
		if b.Password != "" {
			// The message names the source, never the value.
			if err := bridge.ValidatePassword(b.Password); err != nil {
				return nil, s.At(f, errs.Invalid(f, "remote password of bridge %q: %s", b.Name, errs.Problem(err)))
			}
		}
		for _, tf := range []struct {
			field, path string
			dst         *[]byte
		}{{"tls.ca_file", sb.TLS.CAFile, &b.CA}, {"tls.cert_file", sb.TLS.CertFile, &b.Cert}, {"tls.key_file", sb.TLS.KeyFile, &b.Key}} {
			if tf.path == "" {
				continue
			}
			data, err := readInput(o, s, f+"."+tf.field, tf.path)
			if err != nil {
				return nil, err
			}
			*tf.dst = data
		}
		if b.ClientID == "" {
			id, err := DefaultClientID(sys, b.Name)
			if err != nil {
				return nil, err
			}
			b.ClientID = id
		}
		if err := b.Validate(); err != nil {
			var ie *errs.InputError
			if errors.As(err, &ie) {
				return nil, s.At(f+"."+ie.Field, errs.Invalid(f+"."+ie.Field, "%s", ie.Problem))
			}
			return nil, s.At(f, err)
		}
		out = append(out, b)
	}
	existing, err := bridge.Read(sys)
	if err != nil {
		return nil, err
	}
	for _, b := range existing {
		if b.Source == bridge.SourceCLI && !named[b.Name] {
			out = append(out, b)
		}
	}
	if err := bridge.ValidateAll(out); err != nil {
		return nil, s.At("bridges", err)
	}
	return out, nil
}

// DefaultClientID is bridge.ClientIDFor with the host behind sys: its
// hostname (the image's /etc/hostname under a --root) and /etc/machine-id.
func DefaultClientID(sys system.System, name string) (string, error) {
	host, err := sys.Hostname()
	if err != nil {
		return "", fmt.Errorf("read hostname: %w", err)
	}
	id, err := sys.ReadFile("/etc/machine-id")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read /etc/machine-id: %w", err)
	}
	return bridge.ClientIDFor(name, host, id), nil
}

// readInput reads a file named in the spec (relative to its folder), with
// bridge.MaxFile as the cap.
func readInput(o Options, s *spec.Spec, field, path string) ([]byte, error) {
	if !filepath.IsAbs(path) && s.File() != "" {
		path = filepath.Join(filepath.Dir(s.File()), path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > bridge.MaxFile {
		return nil, s.At(field, errs.Invalid(field, "%s is larger than %d bytes", path, bridge.MaxFile))
	}
	data, err := o.ReadFile(path)
	var ie *errs.InputError
	if errors.As(err, &ie) {
		return nil, s.At(field, errs.Invalid(field, "%s", ie.Problem))
	}
	if err != nil {
		return nil, s.At(field, errs.Invalid(field, "can't read %s: %v", path, errs.PathCause(err)))
	}
	if len(data) > bridge.MaxFile {
		return nil, s.At(field, errs.Invalid(field, "%s is larger than %d bytes", path, bridge.MaxFile))
	}
	return data, nil
}

// bridgesStep writes the bridges file and the bridges' TLS files
// (pkg/bridge), removing what a bridge no longer in the spec left.
func bridgesStep(ctx context.Context, sys system.System, s *spec.Spec, d *desired, o Options, r *Result) error {
	res, err := bridge.Converge(sys, d.bridges)
	if err != nil {
		return err
	}
	for _, b := range d.bridges {
		if b.Source == bridge.SourceCLI {
			res.Warn("bridge %s was added with `mosqprov bridge add` and is not in broker.yaml: kept (remove it with `mosqprov bridge rm %s`)", b.Name, b.Name)
		}
	}
	if len(res.Changes) == 0 {
		return nil
	}
	r.add(StepBridges, res)
	return nil
}
