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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/natsconn"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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

// Counts reads the totals per priority that Redis holds under prefix,
// once the fold has counted everything the stream at natsURL holds: the
// counts follow the stream within milliseconds, and a reading taken right
// after a load test would miss the last of them.
func Counts(ctx context.Context, natsURL, redisURL, prefix string) (task.Counts, error) {
	var c task.Counts
	rdb, err := redisconn.New(redisconn.Options{URL: redisURL}, redisconn.Tuning{})
	if err != nil {
		return c, fmt.Errorf("loadtest: %w", err)
	}
	defer rdb.Close()
	nc, err := natsconn.Connect(natsconn.Options{URL: natsURL})
	if err != nil {
		return c, fmt.Errorf("loadtest: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return c, fmt.Errorf("loadtest: %w", err)
	}
	keys := task.Keys{Prefix: prefix}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var w, last uint64
	for {
		if st, err := js.Stream(ctx, task.StreamName); err == nil {
			if info, err := st.Info(ctx); err == nil {
				last = info.State.LastSeq
			}
		}
		var ok bool
		c, w, ok, err = redisconn.ReadCounts(ctx, rdb, keys)
		if err == nil && ok && w >= last {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("loadtest: counts at sequence %d, the stream at %d: %w", w, last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Bare serves the baseline: a fasthttp handler that reads the request and
// answers 200 with the receiver's accepted body, doing nothing else. It
// returns the URL and a function that stops it.
func Bare() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	// The receiver's answer to a new task, encoded by the same code, with a
	// sequence of a realistic length so that the body is as long as the
	// receiver's.
	accepted := task.Answer{Status: task.StatusAccepted, Seq: 12345}.AppendJSON(nil)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(accepted)
		},
		MaxRequestBodySize: 64 << 10,
		NoDefaultDate:      true,
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + task.ReceiverPath, func() { srv.Shutdown() }, nil
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

// Buckets is a reading of a Prometheus histogram: cumulative counts by
// upper bound.
type Buckets struct {
	bounds []float64
	counts []uint64
}

// Histogram reads the histogram name from reg; empty when there is none.
func Histogram(reg prometheus.Gatherer, name string) Buckets {
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() != name || len(f.GetMetric()) == 0 {
			continue
		}
		var b Buckets
		for _, bk := range f.GetMetric()[0].GetHistogram().GetBucket() {
			b.bounds = append(b.bounds, bk.GetUpperBound())
			b.counts = append(b.counts, bk.GetCumulativeCount())
		}
		return b
	}
	return Buckets{}
}

// Sub returns what was observed between earlier and b.
func (b Buckets) Sub(earlier Buckets) Buckets {
	out := Buckets{bounds: b.bounds, counts: slices.Clone(b.counts)}
	for i := range out.counts {
		if i < len(earlier.counts) {
			out.counts[i] -= earlier.counts[i]
		}
	}
	return out
}

// Quantile returns the q-quantile, interpolated within its bucket as
// Prometheus's histogram_quantile does; 0 when nothing was observed.
func (b Buckets) Quantile(q float64) time.Duration {
	if len(b.counts) == 0 || b.counts[len(b.counts)-1] == 0 {
		return 0
	}
	rank := q * float64(b.counts[len(b.counts)-1])
	lo, below := 0.0, uint64(0)
	for i, c := range b.counts {
		if float64(c) >= rank {
			hi := b.bounds[i]
			if c == below {
				return time.Duration(hi * float64(time.Second))
			}
			v := lo + (hi-lo)*(rank-float64(below))/float64(c-below)
			return time.Duration(v * float64(time.Second)).Round(10 * time.Microsecond)
		}
		lo, below = b.bounds[i], c
	}
	return time.Duration(lo * float64(time.Second))
}
