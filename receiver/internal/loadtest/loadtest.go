// Package loadtest drives hey against a receiver and reads back what Redis
// counted, so that a load test also checks that every 200 was counted. It
// also serves the bare fasthttp handler that receiver throughput is
// compared with.
package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// Body is a realistic webhook body: a task as the producer sends it.
var Body = task.Task{
	BatchID:  "7c9e6679-7425-40de-944b-e07fc1f90ae7",
	ID:       42,
	Owner:    "Jacqueline Fitzgerald-Okonkwo",
	Priority: task.Major,
}.Encode()

// Result is what hey reported for one run.
type Result struct {
	Requests  int           // requests sent
	PerSecond float64       // throughput
	P50, P99  time.Duration // latency percentiles
	Statuses  map[int]int   // responses by HTTP status
	Errors    int           // requests that got no response
	Output    string        // hey's whole summary
	CPU       time.Duration // CPU time hey itself used
}

// FindHey returns the path of the hey binary, on PATH or in GOPATH/bin.
func FindHey() (string, error) {
	if p, err := exec.LookPath("hey"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	p := filepath.Join(gopath, "bin", "hey")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("loadtest: hey is not installed: go install github.com/rakyll/hey@v0.1.5 (or make hey)")
	}
	return p, nil
}

// Hey runs hey with n requests over c connections, POSTing body as JSON to
// url, and parses its summary.
func Hey(ctx context.Context, hey, url string, n, c int, body []byte) (Result, error) {
	cmd := exec.CommandContext(ctx, hey, "-n", strconv.Itoa(n), "-c", strconv.Itoa(c),
		"-m", "POST", "-T", "application/json", "-d", string(body), url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Result{Output: string(out)}, fmt.Errorf("loadtest: hey: %w: %s", err, out)
	}
	r, err := Parse(string(out))
	r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, err
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	rePct     = regexp.MustCompile(`(\d+)%+ in ([0-9.]+) secs`)
	reStatus  = regexp.MustCompile(`\[(\d{3})\]\s+(\d+) responses`)
	reErrLine = regexp.MustCompile(`^\s+\[(\d+)\]\s+(.+)$`)
)

// Parse reads hey's summary.
func Parse(out string) (Result, error) {
	r := Result{Statuses: map[int]int{}, Output: out}
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("loadtest: no Requests/sec in hey's output: %s", out)
	}
	r.PerSecond, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range rePct.FindAllStringSubmatch(out, -1) {
		secs, _ := strconv.ParseFloat(m[2], 64)
		d := time.Duration(secs * float64(time.Second))
		switch m[1] {
		case "50":
			r.P50 = d
		case "99":
			r.P99 = d
		}
	}
	for _, m := range reStatus.FindAllStringSubmatch(out, -1) {
		code, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		r.Statuses[code] += n
		r.Requests += n
	}
	// Lines under "Error distribution:" are "  [count]\tmessage".
	if i := strings.Index(out, "Error distribution:"); i >= 0 {
		sc := bufio.NewScanner(strings.NewReader(out[i:]))
		for sc.Scan() {
			if m := reErrLine.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				r.Errors += n
				r.Requests += n
			}
		}
	}
	return r, nil
}

// Counts reads the totals per priority that Redis holds under prefix.
func Counts(ctx context.Context, redisURL, prefix string) (task.Counts, error) {
	var c task.Counts
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return c, fmt.Errorf("loadtest: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	m, err := rdb.HGetAll(ctx, task.Keys{Prefix: prefix}.Counts()).Result()
	if err != nil {
		return c, fmt.Errorf("loadtest: redis: %w", err)
	}
	for name, v := range m {
		p, err := task.ParsePriority(name)
		if err != nil {
			return c, fmt.Errorf("loadtest: counts hash has field %q", name)
		}
		if c[p.Index()], err = strconv.ParseInt(v, 10, 64); err != nil {
			return c, fmt.Errorf("loadtest: count %s = %q", name, v)
		}
	}
	return c, nil
}

// Bare serves the baseline: a fasthttp handler that reads the request and
// answers 200 with the receiver's accepted body, doing nothing else. It
// returns the URL and a function that stops it.
func Bare() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	accepted := []byte(`{"status":"accepted","seq":12345}`) // as long as the receiver's
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(accepted)
		},
		MaxRequestBodySize: 64 << 10,
		NoDefaultDate:      true,
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/consumetasks", func() { srv.Shutdown() }, nil
}

// Summary formats a result on one line.
func (r Result) Summary() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%9.0f req/s  p50 %-9v p99 %-9v", r.PerSecond, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
	fmt.Fprintf(&b, " statuses %v", r.Statuses)
	if r.Errors > 0 {
		fmt.Fprintf(&b, " errors %d", r.Errors)
	}
	return b.String()
}
