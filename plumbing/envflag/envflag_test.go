package envflag_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
)

type config struct {
	Addr    string
	Timeout time.Duration
	Size    int
	Bytes   int64
}

func parse(args []string, env map[string]string, out io.Writer) (config, error) {
	c := config{Addr: ":1", Timeout: time.Second, Size: 10, Bytes: 1 << 20}
	s := envflag.New("svc", "Does things.", func(k string) string { return env[k] }, out)
	s.String(&c.Addr, "addr", "SVC_ADDR", "listen address")
	s.Duration(&c.Timeout, "timeout", "SVC_TIMEOUT", "deadline")
	s.Int(&c.Size, "size", "SVC_SIZE", "size")
	s.Int64(&c.Bytes, "bytes", "SVC_BYTES", "bytes")
	return c, s.Parse(args)
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, config{":1", time.Second, 10, 1 << 20}},
		{"env over default", nil, map[string]string{"SVC_ADDR": ":2", "SVC_TIMEOUT": "3s", "SVC_SIZE": "4", "SVC_BYTES": "5"}, config{":2", 3 * time.Second, 4, 5}},
		{"flag over env", []string{"--addr", ":9", "--size=7"}, map[string]string{"SVC_ADDR": ":2", "SVC_SIZE": "4"}, config{":9", time.Second, 7, 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.args, tt.env, io.Discard)
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		contains string
	}{
		{"bad env int", nil, map[string]string{"SVC_SIZE": "12abc"}, "$SVC_SIZE"},
		{"bad env duration", nil, map[string]string{"SVC_TIMEOUT": "soon"}, "$SVC_TIMEOUT"},
		{"bad flag", []string{"--bytes", "x"}, nil, "bytes"},
		{"unknown flag", []string{"--nope"}, nil, "nope"},
		{"positional", []string{"extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args, tt.env, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.contains)
			}
		})
	}
}

func TestHelpNamesEveryVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := parse([]string{"--help"}, map[string]string{"SVC_SIZE": "3"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: svc", "Does things.", "$SVC_ADDR", "$SVC_TIMEOUT", "$SVC_SIZE", "$SVC_BYTES", `default ":1"`, "--timeout duration"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestKindsGroupsAndSecrets(t *testing.T) {
	var (
		out     bytes.Buffer
		verbose bool
		rate    = 1.5
		wait    = time.Second
		secret  = ""
	)
	env := map[string]string{"SVC_RATE": "2.5", "SVC_WAIT": "0.25", "SVC_SECRET": "whsec_c2VjcmV0"}
	s := envflag.New("svc run", "Runs.", func(k string) string { return env[k] }, &out)
	s.Group("Output")
	s.Bool(&verbose, "verbose", "SVC_VERBOSE", "say more")
	s.Group("Sending")
	s.Float64(&rate, "rate", "SVC_RATE", "per second")
	s.Seconds(&wait, "wait", "SVC_WAIT", "pause")
	s.Secret(&secret, "secret", "SVC_SECRET", "signing secret")
	if err := s.Parse([]string{"--verbose"}); err != nil {
		t.Fatal(err)
	}
	if !verbose || rate != 2.5 || wait != 250*time.Millisecond || secret != "whsec_c2VjcmV0" {
		t.Fatalf("got verbose %v rate %v wait %v secret %q", verbose, rate, wait, secret)
	}
	s.Usage()
	help := out.String()
	for _, want := range []string{"Usage: svc run [flags]", "Output:\n  --verbose\n", "Sending:\n  --rate number", "--wait duration", "$SVC_SECRET"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, help)
		}
	}
	if strings.Index(help, "Output:") > strings.Index(help, "Sending:") {
		t.Errorf("groups out of order:\n%s", help)
	}
	if strings.Contains(help, "c2VjcmV0") {
		t.Errorf("--help shows the secret:\n%s", help)
	}

	// A bad secret is reported without its value.
	env["SVC_WAIT"] = "soon"
	s2 := envflag.New("svc", "", func(k string) string { return env[k] }, io.Discard)
	var w time.Duration
	s2.Seconds(&w, "wait", "SVC_WAIT", "pause")
	if err := s2.Parse(nil); err == nil || !strings.Contains(err.Error(), "$SVC_WAIT") {
		t.Fatalf("bad seconds: %v", err)
	}
	s3 := envflag.New("svc", "", func(string) string { return "x" }, io.Discard)
	var n int
	s3.Int(&n, "n", "SVC_N", "n")
	s3.Secret(&secret, "secret", "", "no variable")
	if err := s3.Parse(nil); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("bad int: %v", err)
	}
}

// A secret set but blank, by its variable or its flag, is an error naming
// it; unset is no secret. Other settings set to "" read as unset.
func TestBlankSecret(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		secret string // the secret parsed
		err    string // in the error; "" for none
	}{
		{"unset", nil, nil, "", ""},
		{"set", nil, map[string]string{"SVC_SECRET": "s3cret"}, "s3cret", ""},
		{"empty variable", nil, map[string]string{"SVC_SECRET": ""}, "", "svc: $SVC_SECRET is set but blank"},
		{"variable of spaces", nil, map[string]string{"SVC_SECRET": "  "}, "", "svc: $SVC_SECRET is set but blank"},
		{"empty flag", []string{"--secret", ""}, nil, "", "-secret: set but blank"},
		{"flag of spaces", []string{"--secret= "}, map[string]string{"SVC_SECRET": "s3cret"}, "", "-secret: set but blank"},
		{"empty variable, flag given", []string{"--secret", "s3cret"}, map[string]string{"SVC_SECRET": ""}, "s3cret", ""},
		{"empty string variable", nil, map[string]string{"SVC_ADDR": ""}, "", ""},
		{"help with an empty variable", []string{"--help"}, map[string]string{"SVC_SECRET": ""}, "", flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, secret := ":1", ""
			s := envflag.NewLookup("svc", "", func(k string) (string, bool) {
				v, ok := tt.env[k]
				return v, ok
			}, io.Discard)
			s.String(&addr, "addr", "SVC_ADDR", "listen address")
			s.Secret(&secret, "secret", "SVC_SECRET", "signing secret")
			err := s.Parse(tt.args)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Parse(%q) with %v: %v, want no error", tt.args, tt.env, err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Parse(%q) with %v: %v, want an error with %q", tt.args, tt.env, err, tt.err)
			case err == nil && (addr != ":1" || secret != tt.secret):
				t.Fatalf("addr %q secret %q, want \":1\" and %q", addr, secret, tt.secret)
			}
		})
	}

	// New cannot see an empty variable, but a blank one or a blank flag
	// is refused all the same.
	for _, tt := range []struct {
		args []string
		env  string
		ok   bool
	}{{nil, "", true}, {nil, "  ", false}, {[]string{"--secret", ""}, "", false}} {
		secret := ""
		s := envflag.New("svc", "", func(string) string { return tt.env }, io.Discard)
		s.Secret(&secret, "secret", "SVC_SECRET", "signing secret")
		if err := s.Parse(tt.args); (err == nil) != tt.ok {
			t.Errorf("New: Parse(%q) with $SVC_SECRET=%q: %v, want ok %v", tt.args, tt.env, err, tt.ok)
		}
	}
}
