package wizard

import (
	"errors"
	"fmt"
	"io"

	"github.com/AlecAivazis/survey/v2"
	"github.com/AlecAivazis/survey/v2/terminal"

	"github.com/mosqprov/mosqprov/pkg/errs"
)

// Survey is the Prompter on a real terminal, built on
// github.com/AlecAivazis/survey/v2. The library is no longer maintained
// upstream: everything it does for mosqprov is in this file, so replacing it
// (charmbracelet/huh, or plain x/term prompts) touches nothing else.
type Survey struct {
	In  terminal.FileReader
	Out terminal.FileWriter
	Err io.Writer
}

func (s Survey) opts(extra ...survey.AskOpt) []survey.AskOpt {
	return append([]survey.AskOpt{survey.WithStdio(s.In, s.Out, s.Err), survey.WithPageSize(10)}, extra...)
}

// interrupted maps survey's Ctrl-C (and a closed terminal) to ErrInterrupted.
func interrupted(err error) error {
	if errors.Is(err, terminal.InterruptErr) || errors.Is(err, io.EOF) {
		return errs.ErrInterrupted
	}
	return err
}

func (s Survey) Input(message, help, def string, validate func(string) error) (string, error) {
	var ans string
	var opts []survey.AskOpt
	if validate != nil {
		opts = append(opts, survey.WithValidator(func(v any) error { return validate(fmt.Sprint(v)) }))
	}
	err := survey.AskOne(&survey.Input{Message: message, Help: help, Default: def}, &ans, s.opts(opts...)...)
	return ans, interrupted(err)
}

func (s Survey) Password(message, help string) (string, error) {
	var ans string
	err := survey.AskOne(&survey.Password{Message: message, Help: help}, &ans, s.opts()...)
	return ans, interrupted(err)
}

func (s Survey) Confirm(message, help string, def bool) (bool, error) {
	var ans bool
	err := survey.AskOne(&survey.Confirm{Message: message, Help: help, Default: def}, &ans, s.opts()...)
	return ans, interrupted(err)
}

func (s Survey) Select(message, help string, opts []Option, def string) (string, error) {
	values, describe := split(opts)
	p := &survey.Select{Message: message, Help: help, Options: values, Description: describe}
	if def != "" {
		p.Default = def
	}
	var ans string
	err := survey.AskOne(p, &ans, s.opts()...)
	return ans, interrupted(err)
}

func (s Survey) MultiSelect(message, help string, opts []Option, defs []string, validate func([]string) error) ([]string, error) {
	values, describe := split(opts)
	p := &survey.MultiSelect{Message: message, Help: help, Options: values, Description: describe}
	if len(defs) > 0 {
		p.Default = defs
	}
	var extra []survey.AskOpt
	if validate != nil {
		extra = append(extra, survey.WithValidator(func(v any) error {
			var chosen []string
			if list, ok := v.([]survey.OptionAnswer); ok {
				for _, o := range list {
					chosen = append(chosen, o.Value)
				}
			}
			return validate(chosen)
		}))
	}
	var ans []string
	err := survey.AskOne(p, &ans, s.opts(extra...)...)
	return ans, interrupted(err)
}

func (s Survey) Say(format string, args ...any) {
	fmt.Fprintf(s.Err, format+"\n", args...)
}

func split(opts []Option) ([]string, func(string, int) string) {
	values := make([]string, len(opts))
	notes := make([]string, len(opts))
	for i, o := range opts {
		values[i], notes[i] = o.Value, o.Note
	}
	return values, func(_ string, i int) string { return notes[i] }
}
