// Package envflag binds every command-line flag of a hookpipe binary to an
// environment variable as well: a flag given on the command line wins over
// the variable, the variable over the default. --help names the variable of
// each flag.
//
// It lives beside the wire contract because every component shares the
// convention (HOOKPIPE_*, plus NATS_URL and REDIS_URL).
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// Set is a flag set whose flags also read environment variables.
type Set struct {
	name   string
	fs     *flag.FlagSet
	getenv func(string) string
	envs   []binding
}

type binding struct{ flag, env string }

// New returns a set for the command name. about is printed under the usage
// line of --help; getenv looks variables up (os.Getenv, or a map in tests);
// usage and errors go to out.
func New(name, about string, getenv func(string) string, out io.Writer) *Set {
	s := &Set{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError), getenv: getenv}
	s.fs.SetOutput(out)
	s.fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s [flags]\n\n%s\nEvery flag can also be set by the environment variable in parentheses.\n\nFlags:\n", name, about)
		s.fs.PrintDefaults()
	}
	return s
}

func (s *Set) bind(name, env string) string {
	s.envs = append(s.envs, binding{name, env})
	return " ($" + env + ")"
}

// String binds p, whose current value is the default.
func (s *Set) String(p *string, name, env, usage string) {
	s.fs.StringVar(p, name, *p, usage+s.bind(name, env))
}

// Duration binds p, whose current value is the default.
func (s *Set) Duration(p *time.Duration, name, env, usage string) {
	s.fs.DurationVar(p, name, *p, usage+s.bind(name, env))
}

// Int binds p, whose current value is the default.
func (s *Set) Int(p *int, name, env, usage string) {
	s.fs.IntVar(p, name, *p, usage+s.bind(name, env))
}

// Int64 binds p, whose current value is the default.
func (s *Set) Int64(p *int64, name, env, usage string) {
	s.fs.Int64Var(p, name, *p, usage+s.bind(name, env))
}

// Var binds a flag of any other type; v holds the default.
func (s *Set) Var(v flag.Value, name, env, usage string) {
	s.fs.Var(v, name, usage+s.bind(name, env))
}

// Parse applies the environment, then args. It returns flag.ErrHelp for
// --help, and an error naming the variable or flag that does not parse.
// Positional arguments are refused.
func (s *Set) Parse(args []string) error {
	for _, b := range s.envs {
		if v := s.getenv(b.env); v != "" {
			if err := s.fs.Set(b.flag, v); err != nil {
				return fmt.Errorf("%s: $%s: %w", s.name, b.env, err)
			}
		}
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", s.name, s.fs.Arg(0))
	}
	return nil
}
