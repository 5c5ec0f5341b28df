package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/receiver/internal/service"
	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// env is one receiver with the real servers behind it.
type env struct {
	m      *service.Main
	url    string
	rdb    *redis.Client
	js     jetstream.JetStream
	keys   task.Keys
	secret task.Secret
}

// counter returns the value of a receiver metric.
func counter(c prometheus.Collector) int {
	return int(testutil.ToFloat64(c))
}

func start(t testing.TB, natsURL, redisURL, prefix string, configure func(*service.Config)) *env {
	t.Helper()
	m := service.NewMain()
	m.Config.Addr = "127.0.0.1:0"
	m.Config.NATS.URL = natsURL
	m.Config.Redis.URL = redisURL
	m.Config.KeyPrefix = prefix
	m.Config.Timeout = 500 * time.Millisecond
	if configure != nil {
		configure(&m.Config)
	}
	if err := m.Config.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Log = slog.New(slog.NewTextHandler(logOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	opt, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	e := &env{m: m, url: m.URL(), rdb: rdb, js: js, keys: task.Keys{Prefix: prefix}}
	testenv.Eventually(t, testenv.ReadyTimeout, func() bool {
		res, err := http.Get(strings.TrimSuffix(e.url, m.Config.Path) + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "receiver not ready")
	return e
}

func newEnv(t testing.TB, configure func(*service.Config)) *env {
	t.Helper()
	ns := testenv.NATS(t)
	url, prefix := testenv.Redis(t)
	return start(t, ns.ClientURL(), url, prefix, configure)
}

func sampleTask(i int) task.Task {
	return task.Task{
		BatchID:  "0f8fad5b-d9cb-469f-a165-70867728950e",
		ID:       int64(i),
		Owner:    fmt.Sprintf("Owner %d", i),
		Priority: task.Priorities[i%task.NumPriorities],
	}
}

type reply struct {
	status int
	body   string
	header http.Header
}

func (e *env) post(t testing.TB, id string, body []byte, hdr map[string]string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set(task.HeaderID, id)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{status: -1, body: err.Error()}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, body: string(b), header: res.Header}
}

// counts returns the totals in Redis once the fold has counted every
// message the stream holds: counts follow the stream, within milliseconds.
func (e *env) counts(t testing.TB) task.Counts {
	t.Helper()
	return folded(t, e.js, e.rdb, e.keys)
}

// folded waits until Redis's watermark is the stream's last sequence and
// returns the counts then.
func folded(t testing.TB, js jetstream.JetStream, rdb redis.Cmdable, keys task.Keys) task.Counts {
	t.Helper()
	var c task.Counts
	var w, last uint64
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var s jetstream.Stream
		var info *jetstream.StreamInfo
		if s, err = js.Stream(context.Background(), task.StreamName); err != nil {
			continue
		}
		if info, err = s.Info(context.Background()); err != nil {
			continue
		}
		last = info.State.LastSeq
		var ok bool
		if c, w, ok, err = redisconn.ReadCounts(context.Background(), rdb, keys); err == nil && ok && w == last {
			return c
		}
	}
	t.Fatalf("the fold did not reach the stream's end: watermark %d, stream %d (%v)", w, last, err)
	return c
}

// streamMsgs returns the messages in the stream: message id -> how many.
func (e *env) streamMsgs(t testing.TB) (byID map[string]int, total int) {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, task.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID = map[string]int{}
	if info.State.Msgs == 0 {
		return byID, 0
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for total < int(info.State.Msgs) {
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading stream after %d of %d: %v", total, info.State.Msgs, err)
		}
		if _, err := task.Decode(msg.Data()); err != nil {
			t.Fatalf("stream holds an invalid task %s: %v", msg.Data(), err)
		}
		byID[msg.Headers().Get(jetstream.MsgIDHeader)]++
		total++
	}
	return byID, total
}

func TestAcceptCountsAndPublishes(t *testing.T) {
	e := newEnv(t, nil)
	var want task.Counts
	seqs := map[uint64]bool{}
	for i := range 20 {
		tk := sampleTask(i)
		r := e.post(t, fmt.Sprintf("msg_%d", i), tk.Encode(), nil)
		var answer struct {
			Status string
			Seq    uint64
		}
		if r.status != 200 || json.Unmarshal([]byte(r.body), &answer) != nil || answer.Status != "accepted" {
			t.Fatalf("post %d: %d %s", i, r.status, r.body)
		}
		// Each task's stream sequence: one after the other, from 1.
		if answer.Seq != uint64(i+1) || seqs[answer.Seq] {
			t.Fatalf("post %d answered sequence %d, want %d", i, answer.Seq, i+1)
		}
		seqs[answer.Seq] = true
		want[tk.Priority.Index()]++
	}
	if got := e.counts(t); got != want {
		t.Fatalf("counts %v, want %v", got, want)
	}
	batch, _ := e.rdb.HGetAll(context.Background(), e.keys.Batch(sampleTask(0).BatchID)).Result()
	if batch["Low"] != fmt.Sprint(want[0]) || batch["Critical"] != fmt.Sprint(want[3]) {
		t.Fatalf("batch hash %v, want counts %v", batch, want)
	}
	byID, total := e.streamMsgs(t)
	if total != 20 || len(byID) != 20 {
		t.Fatalf("stream holds %d messages with %d ids, want 20 and 20", total, len(byID))
	}
}

func TestDuplicateChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	body := sampleTask(3).Encode()
	first := e.post(t, "msg_dup", body, nil)
	second := e.post(t, "msg_dup", body, nil)
	if first.status != 200 || second.status != 200 || !strings.Contains(second.body, "duplicate") {
		t.Fatalf("first %d %s, second %d %s; want 200 accepted then 200 duplicate", first.status, first.body, second.status, second.body)
	}
	if got := e.counts(t).Total(); got != 1 {
		t.Fatalf("total %d after a duplicate, want 1", got)
	}
	if _, total := e.streamMsgs(t); total != 1 {
		t.Fatalf("stream holds %d messages, want 1", total)
	}
	if d := counter(e.m.Metrics.Duplicates); d != 1 {
		t.Fatalf("duplicates metric %d, want 1", d)
	}
}

func TestRequestsWithoutIDCountEachTime(t *testing.T) {
	e := newEnv(t, nil)
	body := sampleTask(1).Encode()
	for range 3 {
		if r := e.post(t, "", body, nil); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if got := e.counts(t).Total(); got != 3 {
		t.Fatalf("total %d, want 3", got)
	}
}

func TestSignedRequests(t *testing.T) {
	secret, _ := task.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	rotated, _ := task.ParseSecret("whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=")
	e := newEnv(t, func(c *service.Config) { c.WebhookSecret = rotated.String() + " " + secret.String() })
	for i, s := range []task.Secret{secret, rotated} {
		body := sampleTask(i).Encode()
		id := fmt.Sprintf("msg_signed_%d", i)
		now := time.Now()
		r := e.post(t, id, body, map[string]string{
			task.HeaderTimestamp: fmt.Sprint(now.Unix()),
			task.HeaderSignature: s.Sign(id, now, body),
		})
		if r.status != 200 {
			t.Fatalf("signed with secret %d: %d %s", i, r.status, r.body)
		}
	}
	if got := e.counts(t).Total(); got != 2 {
		t.Fatalf("total %d, want 2", got)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.post(t, "", sampleTask(0).Encode(), nil)
	base := strings.TrimSuffix(e.url, "/consumetasks")
	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"ok"`,
		"/metrics": `hookpipe_receiver_requests_total{status="200"} 1`,
	} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %s; want 200 containing %s", path, res.StatusCode, b, want)
		}
	}
}

// metric returns the value of an unlabelled metric as /metrics serves it,
// and the metric's help.
func (e *env) metric(t testing.TB, name string) (value float64, help string) {
	t.Helper()
	res, err := http.Get(strings.TrimSuffix(e.url, e.m.Config.Path) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	value = -1
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if h, ok := strings.CutPrefix(line, "# HELP "+name+" "); ok {
			help = h
		}
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			if value, err = strconv.ParseFloat(v, 64); err != nil {
				t.Fatalf("%s: %q", name, line)
			}
		}
	}
	return value, help
}

// hookpipe_fold_batches is the batches the fold keeps and
// hookpipe_redis_keys every key of the Redis database: on a Redis of the
// test's own, the counts hash, the batch index, a hash per batch and a
// seen key per webhook id, and a key of anyone else's too.
func TestMetricsOfWhatRedisHolds(t *testing.T) {
	e, rp := privateEnv(t)
	const withID, withoutID = 6, 2
	for i := range withID + withoutID {
		tk := sampleTask(i)
		tk.BatchID = []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"}[i%2]
		id := fmt.Sprintf("msg_metrics_%d", i)
		if i >= withID {
			id = ""
		}
		if r := e.post(t, id, tk.Encode(), nil); r.status != 200 {
			t.Fatalf("post %d: %d %s", i, r.status, r.body)
		}
	}
	e.counts(t)
	check := func(wantKeys float64) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			batches, _ := e.metric(t, "hookpipe_fold_batches")
			keys, _ := e.metric(t, "hookpipe_redis_keys")
			if batches == 2 && keys == wantKeys {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("hookpipe_fold_batches %v, want 2; hookpipe_redis_keys %v, want %v", batches, keys, wantKeys)
			}
		}
	}
	// The counts hash, the batch index, two batch hashes, a seen key per id.
	check(4 + withID)
	if err := rp.Client(t).Set(context.Background(), "another-application:key", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	check(4 + withID + 1)
	if _, help := e.metric(t, "hookpipe_redis_keys"); !strings.Contains(help, "whole Redis database") {
		t.Errorf("hookpipe_redis_keys help %q does not say it counts the whole database", help)
	}
}

func TestConfigFromEnvAndFlags(t *testing.T) {
	env := map[string]string{"HOOKPIPE_RECEIVER_ADDR": "127.0.0.1:7000", "HOOKPIPE_MAX_BODY_SIZE": "1000", "REDIS_URL": "redis://r:1"}
	c := service.DefaultConfig()
	if err := c.Parse([]string{"--addr", "127.0.0.1:7001"}, lookupIn(env), io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7001" || c.MaxBodySize != 1000 || c.Redis.URL != "redis://r:1" {
		t.Fatalf("got addr %s size %d redis %s; want the flag over the env, the env over the default", c.Addr, c.MaxBodySize, c.Redis.URL)
	}
	for _, bad := range [][]string{{"--max-body-size", "12abc"}, {"--webhook-secret", "whsec_***"}, {"--timeout", "0s"}, {"--log-format", "xml"},
		// Seen ids may not outlive the stream they are rebuilt from, nor end
		// inside the duplicate window.
		{"--dedupe-ttl", "25h"}, {"--dedupe-ttl", "2h", "--stream-max-age", "1h"}, {"--dedupe-ttl", "5m"}} {
		c := service.DefaultConfig()
		if err := c.Parse(bad, lookupIn(nil), io.Discard); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// load is traffic from retrying senders while a test breaks something.
type load struct {
	mu       sync.Mutex
	accepted map[string]task.Task // ids answered 200
	answers  int                  // 200s answered, duplicates included
	refused  int                  // 503s and failed connections
}

// Accepted returns how many ids were answered 200 so far.
func (l *load) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// Refused returns how many attempts got a 503 or no answer so far.
func (l *load) Refused() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// underLoad posts tasks with fresh ids from 8 workers, to urls in turn,
// retrying each on anything but a 200 the way a webhook sender does, while
// outage runs in the test's goroutine; it keeps posting until outage has
// returned and at least min ids were accepted.
// loadBatches are the batches a load spreads its tasks over, so that the
// per-batch counts are checked as well as the totals.
var loadBatches = [...]string{
	"0f8fad5b-d9cb-469f-a165-70867728950e",
	"7c9e6679-7425-40de-944b-e07fc1f90ae7",
	"16fd2706-8baf-433b-82eb-8c7fada847da",
}

func underLoad(t *testing.T, urls []string, name string, min int, outage func(l *load)) *load {
	t.Helper()
	l := &load{accepted: map[string]task.Task{}}
	var (
		next = make(chan int)
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				id := fmt.Sprintf("msg_%s_%d", name, i)
				tk := sampleTask(i)
				tk.BatchID = loadBatches[i%len(loadBatches)]
				for attempt := 0; ; attempt++ {
					r := postTo(urls[(i+attempt)%len(urls)], id, tk.Encode())
					if r.status == 200 {
						l.mu.Lock()
						l.accepted[id] = tk
						l.answers++
						l.mu.Unlock()
						break
					}
					if r.status != 503 && r.status != -1 {
						t.Errorf("id %s: %d %s", id, r.status, r.body)
						return
					}
					if r.status == 503 && r.header.Get("Retry-After") == "" {
						t.Errorf("503 without Retry-After")
					}
					l.mu.Lock()
					l.refused++
					l.mu.Unlock()
					if attempt > 1200 {
						t.Errorf("id %s never accepted", id)
						return
					}
					time.Sleep(25 * time.Millisecond)
				}
			}
		})
	}
	feed := make(chan struct{})
	go func() {
		defer close(feed)
		defer close(next)
		for i := 0; ; i++ {
			select {
			case <-stop:
				if l.Accepted() >= min {
					return
				}
			default:
			}
			select {
			case next <- i:
			case <-time.After(60 * time.Second): // every worker gave up
				return
			}
		}
	}()
	outage(l)
	close(stop)
	<-feed
	wg.Wait()
	if l.Accepted() < min {
		t.Fatalf("only %d ids accepted", l.Accepted())
	}
	return l
}

func postTo(url, id string, body []byte) reply {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(task.HeaderID, id)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{status: -1, body: err.Error()}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, body: string(b), header: res.Header}
}

// checkExact waits for the fold to reach the stream's end and checks that
// every id answered 200 is in the stream once and counted once. It logs a
// line of the fault table.
func checkExact(t *testing.T, e *env, fault string, l *load) {
	t.Helper()
	var want task.Counts
	for _, tk := range l.accepted {
		want[tk.Priority.Index()]++
	}
	got := e.counts(t)
	byID, total := e.streamMsgs(t)
	wantBatch := map[string]task.Counts{}
	for _, tk := range l.accepted {
		c := wantBatch[tk.BatchID]
		c[tk.Priority.Index()]++
		wantBatch[tk.BatchID] = c
	}
	exactBatches := 0
	for id, w := range wantBatch {
		fields, err := e.rdb.HGetAll(context.Background(), e.keys.Batch(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if c, _, _, err := task.ParseCounts(fields); err != nil || c != w {
			t.Errorf("batch %s: redis counts %v (%v), want %v", id, c, err, w)
			continue
		}
		exactBatches++
	}
	t.Logf("fault table | %s | 200s answered %d (ids %d) | counted %d | in stream %d | difference %d | batches exact %d of %d | refused attempts %d",
		fault, l.answers, len(l.accepted), got.Total(), total, got.Total()-int64(total), exactBatches, len(wantBatch), l.refused)
	if got != want {
		t.Errorf("redis counts %v, want %v (one per unique accepted id)", got, want)
	}
	if total != len(l.accepted) {
		t.Errorf("stream holds %d messages, want %d", total, len(l.accepted))
	}
	for id := range l.accepted {
		if byID[id] != 1 {
			t.Errorf("stream holds id %s %d times, want once", id, byID[id])
		}
	}
}

func TestRedisStoppedUnderLoad(t *testing.T) {
	ns := testenv.NATS(t)
	rp := testenv.StartRedis(t)
	e := start(t, ns.ClientURL(), rp.URL(), testenv.KeyPrefix(t), nil)
	l := underLoad(t, []string{e.url}, "redis", 200, func(l *load) {
		testenv.Eventually(t, 10*time.Second, func() bool { return l.Accepted() >= 50 }, "no traffic accepted")
		rp.Stop()
		testenv.Eventually(t, 10*time.Second, func() bool { return counter(e.m.Metrics.RedisFailures) >= 20 }, "no request met the Redis outage")
		rp.Restart(t)
	})
	checkExact(t, e, "Redis killed, restarted with its data", l)
}

func TestNATSStoppedUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ns := testenv.StartNATS(t, -1, dir)
	port := testenv.Port(ns)
	url, prefix := testenv.Redis(t)
	e := start(t, ns.ClientURL(), url, prefix, nil)
	l := underLoad(t, []string{e.url}, "nats", 200, func(l *load) {
		testenv.Eventually(t, 10*time.Second, func() bool { return l.Accepted() >= 50 }, "no traffic accepted")
		ns.Shutdown()
		ns.WaitForShutdown()
		testenv.Eventually(t, 10*time.Second, func() bool { return counter(e.m.Metrics.PublishFailures) >= 20 }, "no request met the NATS outage")
		testenv.StartNATS(t, port, dir)
	})
	checkExact(t, e, "NATS restarted", l)
}

// TestNoIDPublishFailureCountsWhatTheStreamHolds: a request without an id
// whose publish fails is answered 503, and counts only if the stream got
// it after all: nothing is counted on the request path, so nothing has to
// be taken back, and the counts always equal the stream.
func TestNoIDPublishFailureCountsWhatTheStreamHolds(t *testing.T) {
	dir := t.TempDir()
	ns := testenv.StartNATS(t, -1, dir)
	port := testenv.Port(ns)
	url, prefix := testenv.Redis(t)
	e := start(t, ns.ClientURL(), url, prefix, nil)
	if r := e.post(t, "", sampleTask(0).Encode(), nil); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := e.counts(t).Total(); got != 1 {
		t.Fatalf("total %d, want 1", got)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	for i := range 5 {
		if r := e.post(t, "", sampleTask(i).Encode(), nil); r.status != 503 {
			t.Fatalf("with NATS down: %d %s, want 503", r.status, r.body)
		}
	}
	testenv.StartNATS(t, port, dir)
	// Retried as a sender would: each 503 may or may not have reached the
	// stream while the receiver reconnects.
	testenv.Eventually(t, 20*time.Second, func() bool {
		return e.post(t, "", sampleTask(7).Encode(), nil).status == 200
	}, "no 200 once NATS was back")
	got := e.counts(t).Total()
	_, inStream := e.streamMsgs(t)
	if got != int64(inStream) || inStream < 2 {
		t.Fatalf("total %d with %d tasks in the stream after 2 accepted requests without id, want them equal and at least 2", got, inStream)
	}
}

func TestIDReusedForAnotherTaskIs409(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.post(t, "msg_reused", sampleTask(0).Encode(), nil); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r := e.post(t, "msg_reused", sampleTask(1).Encode(), nil)
	if r.status != 409 || !strings.Contains(r.body, "different task") {
		t.Fatalf("same id, other task: %d %s; want 409", r.status, r.body)
	}
	if got := e.counts(t).Total(); got != 1 {
		t.Fatalf("total %d, want 1", got)
	}
	if _, total := e.streamMsgs(t); total != 1 {
		t.Fatalf("stream holds %d messages, want 1", total)
	}
}

// fingerprintV1 is the fingerprint receivers wrote before version 2: the
// FNV-64a of the canonical encoding, in base 36, without prefix.
func fingerprintV1(encoded []byte) string {
	h := fnv.New64a()
	h.Write(encoded)
	return strconv.FormatUint(h.Sum64(), 36)
}

// A retry of a task remembered under the fingerprint of version 1, in its
// seen key or in the header of its stored message (an older receiver
// wrote them, within the dedupe window), is still a retry of the same
// task: 200 duplicate with the stored sequence, not 409; the id for
// another task is still 409.
func TestRetryUnderTheOldFingerprintIsADuplicate(t *testing.T) {
	const id = "msg_under_the_old_fingerprint"
	tk := sampleTask(4)
	body := tk.Encode()
	old := fingerprintV1(body)
	ctx := context.Background()
	// publishOld stores tk under id as an older receiver did.
	publishOld := func(t *testing.T, e *env) uint64 {
		t.Helper()
		m := nats.NewMsg(tk.Priority.Subject())
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, id)
		m.Header.Set(task.HeaderFingerprint, old)
		var ack *jetstream.PubAck
		testenv.Eventually(t, 10*time.Second, func() bool {
			var err error
			ack, err = e.js.PublishMsg(ctx, m) // once the receiver made the stream
			return err == nil
		}, "could not publish to the stream")
		e.counts(t)
		return ack.Sequence
	}
	for _, tt := range []struct {
		name string
		// store stores tk under id as an older receiver left it, and
		// returns its sequence.
		store func(t *testing.T, e *env) uint64
	}{
		{"seen key", func(t *testing.T, e *env) uint64 {
			r := e.post(t, id, body, nil)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			e.counts(t) // the fold has written the seen key
			seq := task.ParseAnswer([]byte(r.body)).Seq
			if err := e.rdb.Set(ctx, e.keys.Seen(id), task.Seen{Fingerprint: old, Seq: seq}.String(), time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			return seq
		}},
		{"stored message and the seen key folded from it", func(t *testing.T, e *env) uint64 {
			seq := publishOld(t, e)
			if v, _ := e.rdb.Get(ctx, e.keys.Seen(id)).Result(); v != (task.Seen{Fingerprint: old, Seq: seq}).String() {
				t.Fatalf("seen key %q, want the old fingerprint %s and sequence %d", v, old, seq)
			}
			return seq
		}},
		{"stored message, seen key lost", func(t *testing.T, e *env) uint64 {
			seq := publishOld(t, e)
			e.rdb.Del(ctx, e.keys.Seen(id))
			return seq
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			seq := tt.store(t, e)
			r := e.post(t, id, body, nil)
			if a := task.ParseAnswer([]byte(r.body)); r.status != 200 || a.Status != task.StatusDuplicate || a.Seq != seq {
				t.Fatalf("retry: %d %s, want 200 duplicate with sequence %d", r.status, r.body, seq)
			}
			if r := e.post(t, id, sampleTask(5).Encode(), nil); r.status != 409 {
				t.Fatalf("the id for another task: %d %s, want 409", r.status, r.body)
			}
			if got := e.counts(t).Total(); got != 1 {
				t.Fatalf("total %d, want 1", got)
			}
			if _, total := e.streamMsgs(t); total != 1 {
				t.Fatalf("stream holds %d messages, want 1", total)
			}
		})
	}
}

// silentListener accepts connections and never answers, like a server
// that hangs or a network that drops everything.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

// TestHungDependenciesAnswer503InTime checks that requests do not hang on
// a dependency that accepts connections and never answers: they get a 503
// close to the configured deadline.
func TestHungDependenciesAnswer503InTime(t *testing.T) {
	const timeout = 300 * time.Millisecond
	url, prefix := testenv.Redis(t)
	ns := testenv.NATS(t)
	for _, tt := range []struct {
		name              string
		natsURL, redisURL string
	}{
		{"redis", ns.ClientURL(), "redis://" + silentListener(t)},
		{"nats", "nats://" + silentListener(t), url},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := service.NewMain()
			m.Config.Addr = "127.0.0.1:0"
			m.Config.NATS.URL, m.Config.Redis.URL, m.Config.KeyPrefix = tt.natsURL, tt.redisURL, prefix
			m.Config.Timeout = timeout
			m.Config.ShutdownTimeout = 2 * time.Second
			m.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
			if err := m.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			e := &env{m: m, url: m.URL()}
			for i := range 3 {
				start := time.Now()
				r := e.post(t, fmt.Sprintf("msg_hung_%d", i), sampleTask(i).Encode(), nil)
				d := time.Since(start)
				if r.status != 503 || r.header.Get("Retry-After") != "1" {
					t.Fatalf("%d %s Retry-After %q; want 503 with Retry-After 1", r.status, r.body, r.header.Get("Retry-After"))
				}
				var body map[string]string
				if err := json.Unmarshal([]byte(r.body), &body); err != nil || body["error"] == "" {
					t.Fatalf("503 body %q is not a JSON error", r.body)
				}
				// The deadline is what is checked, with room for a slow
				// machine: nothing may wait on the dead dependency itself.
				if d > timeout+2*time.Second {
					t.Fatalf("503 took %v with a %v deadline", d, timeout)
				}
			}
		})
	}
}

func logOut() io.Writer {
	if os.Getenv("HOOKPIPE_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
