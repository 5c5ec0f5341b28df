// Package envflag binds every command-line flag of a hookpipe binary to an
// environment variable as well: a flag given on the command line wins over
// the variable, the variable over the default. --help lists the flags in
// groups, each with its type, variable and default; secrets are never
// shown. A secret set but blank, by its variable or its flag, is an error
// rather than no secret: "HOOKPIPE_WEBHOOK_SECRET=" in a deployment is a
// secret that went missing, and must not read as one left out on purpose.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Set is a flag set whose flags also read environment variables.
type Set struct {
	name      string
	about     string
	fs        *flag.FlagSet
	lookupEnv func(string) (string, bool)
	out       io.Writer
	flags     []*binding
	group     string
	args      string // what the usage line says of positional arguments; "" refuses them
}

type binding struct {
	flag, env, kind, group string
	secret                 bool
}

// New returns a set for the command name (such as "receiver" or "producer
// send"). about is printed under the usage line of --help; getenv looks
// variables up (os.Getenv, or a map in tests); usage and errors go to out.
// getenv cannot tell a variable set to "" from one unset, so both read as
// unset, a secret's too: NewLookup tells them apart.
func New(name, about string, getenv func(string) string, out io.Writer) *Set {
	return NewLookup(name, about, func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}, out)
}

// NewLookup returns a set like New whose variables are looked up with
// lookupEnv (os.LookupEnv, or a map in tests): a variable set to "" then
// reads as unset, except a secret's, which is an error.
func NewLookup(name, about string, lookupEnv func(string) (string, bool), out io.Writer) *Set {
	s := &Set{name: name, about: about, fs: flag.NewFlagSet(name, flag.ContinueOnError), lookupEnv: lookupEnv, out: out}
	s.fs.SetOutput(out)
	s.fs.Usage = s.usage
	return s
}

// TakeArgs lets Parse accept positional arguments after the flags, which
// the usage line names as synopsis (such as "FILE..."); Args returns them.
func (s *Set) TakeArgs(synopsis string) { s.args = synopsis }

// Args returns the positional arguments, after Parse.
func (s *Set) Args() []string { return s.fs.Args() }

// Group starts a heading in --help: the flags bound after it are listed
// under it.
func (s *Set) Group(heading string) { s.group = heading }

func (s *Set) bind(v flag.Value, kind, name, env, usage string, secret bool) {
	s.fs.Var(v, name, usage)
	s.flags = append(s.flags, &binding{flag: name, env: env, kind: kind, group: s.group, secret: secret})
}

// String binds p, whose current value is the default.
func (s *Set) String(p *string, name, env, usage string) {
	s.bind((*stringValue)(p), "string", name, env, usage, false)
}

// Secret binds p like String, but --help never shows its value, and a
// blank value (empty or only spaces) is an error: leaving the flag and its
// variable unset is how to go without a secret.
func (s *Set) Secret(p *string, name, env, usage string) {
	s.bind((*secretValue)(p), "string", name, env, usage, true)
}

// Bool binds p, whose current value is the default. On the command line
// --name alone means true.
func (s *Set) Bool(p *bool, name, env, usage string) {
	s.bind((*boolValue)(p), "", name, env, usage, false)
}

// Int binds p, whose current value is the default.
func (s *Set) Int(p *int, name, env, usage string) {
	s.bind((*intValue)(p), "int", name, env, usage, false)
}

// Int64 binds p, whose current value is the default.
func (s *Set) Int64(p *int64, name, env, usage string) {
	s.bind((*int64Value)(p), "int", name, env, usage, false)
}

// Float64 binds p, whose current value is the default.
func (s *Set) Float64(p *float64, name, env, usage string) {
	s.bind((*floatValue)(p), "number", name, env, usage, false)
}

// Duration binds p, whose current value is the default; it takes Go
// durations such as 250ms or 1m30s.
func (s *Set) Duration(p *time.Duration, name, env, usage string) {
	s.bind((*durationValue)(p), "duration", name, env, usage, false)
}

// Seconds binds p like Duration, and also takes a bare number of seconds
// ("1", "0.5"), as the tutorial's WAIT_TIME does.
func (s *Set) Seconds(p *time.Duration, name, env, usage string) {
	s.bind((*secondsValue)(p), "duration", name, env, usage, false)
}

// Var binds a flag of any other type; v holds the default.
func (s *Set) Var(v flag.Value, name, env, usage string) {
	s.bind(v, "value", name, env, usage, false)
}

// Parse applies the environment, then args. It returns flag.ErrHelp for
// --help, and an error naming the variable or flag that does not parse,
// or the secret that is set but blank. A variable set to "" reads as
// unset, unless it is a secret's. Positional arguments are refused.
func (s *Set) Parse(args []string) error {
	var blank []*binding // secrets whose variable is set but blank
	for _, b := range s.flags {
		if b.env == "" {
			continue
		}
		v, ok := s.lookupEnv(b.env)
		switch {
		case !ok:
			continue
		case b.secret && isBlank(v):
			blank = append(blank, b)
			continue
		case v == "":
			continue
		}
		if err := s.fs.Set(b.flag, v); err != nil {
			shown := strconv.Quote(v)
			if b.secret {
				shown = "(hidden)"
			}
			return fmt.Errorf("%s: $%s=%s: %w", s.name, b.env, shown, err)
		}
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if s.fs.NArg() > 0 && s.args == "" {
		return fmt.Errorf("%s: unexpected argument %q", s.name, s.fs.Arg(0))
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, b := range blank {
		// The flag wins over its variable: only a blank variable that
		// would stand is wrong.
		if !given[b.flag] {
			return fmt.Errorf("%s: $%s is set but blank: unset it to run without one, or give a secret", s.name, b.env)
		}
	}
	return nil
}

func isBlank(v string) bool { return strings.TrimSpace(v) == "" }

// Usage writes --help: the usage line, about, and every flag by group.
func (s *Set) Usage() { s.usage() }

func (s *Set) usage() {
	w := s.out
	if s.args != "" {
		fmt.Fprintf(w, "Usage: %s [flags] %s\n\n", s.name, s.args)
	} else {
		fmt.Fprintf(w, "Usage: %s [flags]\n\n", s.name)
	}
	if s.about != "" {
		fmt.Fprintf(w, "%s\n\n", s.about)
	}
	fmt.Fprintf(w, "Every flag can also be set by the environment variable named with it;\na flag on the command line wins over the variable.\n")
	group := "\x00"
	for _, b := range s.flags {
		if b.group != group {
			group = b.group
			heading := group
			if heading == "" {
				heading = "Flags"
			}
			fmt.Fprintf(w, "\n%s:\n", heading)
		}
		f := s.fs.Lookup(b.flag)
		head := "  --" + b.flag
		if b.kind != "" {
			head += " " + b.kind
		}
		var notes []string
		if b.env != "" {
			notes = append(notes, "$"+b.env)
		}
		switch def := f.DefValue; {
		case b.secret && def != "":
			notes = append(notes, "default set, not shown")
		case b.secret, def == "", b.kind == "" && def == "false":
		case b.kind == "string":
			notes = append(notes, "default "+strconv.Quote(def))
		default:
			notes = append(notes, "default "+def)
		}
		fmt.Fprintf(w, "%s\n    \t%s", head, f.Usage)
		if len(notes) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(notes, ", "))
		}
		fmt.Fprintln(w)
	}
}

type (
	stringValue   string
	secretValue   string
	boolValue     bool
	intValue      int
	int64Value    int64
	floatValue    float64
	durationValue time.Duration
	secondsValue  time.Duration
)

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

func (v *secretValue) Set(s string) error {
	if isBlank(s) {
		return errors.New("set but blank: leave the flag out to run without one, or give a secret")
	}
	*v = secretValue(s)
	return nil
}
func (v *secretValue) String() string { return string(*v) }

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not true or false")
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v = int64Value(n)
	return nil
}
func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }

func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration such as 1s, 250ms or 1m30s")
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }

func (v *secondsValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		*v = secondsValue(time.Duration(f * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 1s, 250ms or a number of seconds")
	}
	*v = secondsValue(d)
	return nil
}
func (v *secondsValue) String() string { return time.Duration(*v).String() }
