package program_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/program"
)

type fake struct {
	parseErr, runErr, closeErr error
	job                        chan struct{}
	ran, closed                bool
}

func (f *fake) ParseFlags(context.Context, []string) error { return f.parseErr }
func (f *fake) Run(context.Context) error                  { f.ran = true; return f.runErr }
func (f *fake) Close() error                               { f.closed = true; return f.closeErr }

type job struct{ fake }

func (j *job) Done() <-chan struct{} { return j.job }

func TestExitCodes(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	close(done)
	tests := []struct {
		name     string
		m        program.Main
		ctx      context.Context
		code     int
		stderr   string
		ran, cls bool
	}{
		{"help", &fake{parseErr: flag.ErrHelp}, cancelled, 0, "", false, false},
		{"usage already said", &fake{parseErr: program.ErrUsage}, cancelled, 2, "", false, false},
		{"bad config", &fake{parseErr: errors.New("bad port")}, cancelled, 2, "svc: bad port", false, false},
		{"served until signal", &fake{}, cancelled, 0, "", true, true},
		{"start failed", &fake{runErr: errors.New("no listen")}, cancelled, 1, "svc: no listen", true, true},
		{"close failed", &fake{closeErr: errors.New("deadline")}, cancelled, 1, "svc: deadline", true, true},
		{"job ends by itself", &job{fake{job: done}}, context.Background(), 0, "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			end := make(chan int, 1)
			go func() { end <- program.Execute(tt.ctx, "svc", tt.m, nil, &stderr) }()
			var code int
			select {
			case code = <-end:
			case <-time.After(10 * time.Second):
				t.Fatal("Execute did not return")
			}
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) || (tt.stderr == "" && stderr.Len() > 0) {
				t.Fatalf("code %d stderr %q, want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
			var f *fake
			switch m := tt.m.(type) {
			case *fake:
				f = m
			case *job:
				f = &m.fake
			}
			if f.ran != tt.ran || f.closed != tt.cls {
				t.Fatalf("ran %v closed %v, want %v %v", f.ran, f.closed, tt.ran, tt.cls)
			}
		})
	}
}
