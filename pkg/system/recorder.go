package system

import (
	"context"
	"strings"
	"sync"
)

// Recorder is a Runner for tests: it records every command and answers from
// a script of responses keyed by the command line's prefix.
type Recorder struct {
	mu        sync.Mutex
	Calls     []Cmd
	responses []response
}

type response struct {
	prefix string
	out    Output
	err    error
}

// On makes commands whose line starts with prefix answer out and err. The
// latest matching rule wins, so a test can change the answer as state changes.
func (r *Recorder) On(prefix string, out Output, err error) *Recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.responses = append(r.responses, response{prefix, out, err})
	return r
}

func (r *Recorder) Run(_ context.Context, cmd Cmd) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls = append(r.Calls, cmd)
	line := cmd.String()
	for i := len(r.responses) - 1; i >= 0; i-- {
		if strings.HasPrefix(line, r.responses[i].prefix) {
			return r.responses[i].out, r.responses[i].err
		}
	}
	return Output{}, nil
}

// Lines is the recorded command lines, in order.
func (r *Recorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lines []string
	for _, c := range r.Calls {
		lines = append(lines, c.String())
	}
	return lines
}
