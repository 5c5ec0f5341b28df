package relay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
)

func TestBatches(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	ctx := context.Background()
	ids := []string{"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", "33333333-3333-3333-3333-333333333333"}
	for i, id := range ids {
		e.rdb.HSet(ctx, e.keys.Batch(id), "Low", i+1, "Critical", 10*(i+1))
		e.rdb.ZAdd(ctx, e.keys.Batches(), redisZ(float64(1_700_000_000_000+i*1000), id))
	}
	e.rdb.HSet(ctx, e.keys.Batch(ids[1]), task.BatchSizeField, 50)
	base := "http://" + r.Addr()

	code, body := httpGet(t, base+"/batches", nil)
	var list []task.BatchSummary
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("GET /batches: %d %s", code, body)
	}
	if len(list) != 3 || list[0].BatchID != ids[2] || list[2].BatchID != ids[0] {
		t.Fatalf("list not newest first: %+v", list)
	}
	if got := list[1]; got.Size != 50 || got.Counts.Of(task.Low) != 2 || got.Counts.Of(task.Critical) != 20 ||
		!got.Updated.Equal(time.UnixMilli(1_700_000_001_000)) {
		t.Errorf("batch 2: %+v", got)
	}

	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/batches?limit=1", 200, ids[2]},
		{"/batches?limit=0", 400, "limit"},
		{"/batches?limit=x", 400, "limit"},
		{"/batches/" + ids[0], 200, `"Critical":10`},
		{"/batches/44444444-4444-4444-4444-444444444444", 404, "no such batch"},
		{"/batches/not-a-uuid", 400, "UUID"},
		{"/healthz", 200, "ok"},
		{"/readyz", 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := httpGet(t, base+tt.path, nil)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%d %q, want %d with %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	if n, _ := e.rdb.Exists(ctx, e.keys.Batch("44444444-4444-4444-4444-444444444444")).Result(); n != 0 {
		t.Error("a lookup created a batch")
	}
}

// A batch id written in upper case names the batch stored under its
// canonical, lower-case form, as the receiver stores it.
func TestBatchIDInUpperCase(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	ctx := context.Background()
	const id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	e.rdb.HSet(ctx, e.keys.Batch(id), "Major", 7)
	e.rdb.ZAdd(ctx, e.keys.Batches(), redisZ(1_700_000_000_000, id))
	for _, asked := range []string{id, strings.ToUpper(id), "6BA7B810-9dad-11D1-80b4-00C04FD430C8"} {
		code, body := httpGet(t, "http://"+r.Addr()+"/batches/"+asked, nil)
		var b task.BatchSummary
		if code != 200 || json.Unmarshal([]byte(body), &b) != nil || b.BatchID != id || b.Counts.Of(task.Major) != 7 {
			t.Errorf("GET /batches/%s: %d %s; want 200 with batch %s and Major 7", asked, code, body, id)
		}
	}
	if n, _ := e.rdb.Exists(ctx, e.keys.Batch(strings.ToUpper(id))).Result(); n != 0 {
		t.Error("a lookup created a batch under the upper-case id")
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	url := "http://" + r.Addr() + "/batches"
	resp, err := http.DefaultClient.Do(mustReq(t, url, "http://localhost:8080"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); resp.StatusCode != 200 || got != "http://localhost:8080" {
		t.Errorf("dashboard origin: %d, allow-origin %q", resp.StatusCode, got)
	}
	resp, err = http.DefaultClient.Do(mustReq(t, url, "http://evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin: %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func mustReq(t testing.TB, url, origin string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	return req
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	e.publish(t, 10, 0)
	c.waitCurrent(t, e, 10)
	code, body := httpGet(t, "http://"+r.Addr()+"/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"hookpipe_relay_clients 1\n", "hookpipe_relay_stream_seq 10\n", "hookpipe_relay_stream_lag 0\n",
		"hookpipe_relay_slow_disconnects_total 0\n", "hookpipe_relay_snapshots_total 1\n", `hookpipe_relay_refused_total{reason="limit"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(body, "hookpipe_relay_frames_sent_total ") || strings.Contains(body, "hookpipe_relay_frames_sent_total 0\n") {
		t.Errorf("/metrics counts no frames sent:\n%s", body)
	}
}

// While Redis is away the relay reports not ready; once it is back,
// clients hold what Redis holds.
func TestRedisRestart(t *testing.T) {
	rp := testenv.StartRedis(t)
	e := newEnvOn(t, rp.URL(), testenv.KeyPrefix(t))
	r := startRelay(t, e.config())
	c := dial(t, wsURL(r, ""), nil)
	e.publish(t, 20, 0)
	c.waitCurrent(t, e, 20)

	rp.Stop()
	testenv.Eventually(t, 10*time.Second, func() bool { ok, _ := r.Ready(); return !ok }, "relay ready with Redis down")
	code, body := httpGet(t, "http://"+r.Addr()+"/readyz", nil)
	if code != 503 || !strings.Contains(body, "redis") {
		t.Errorf("/readyz with Redis down: %d %q", code, body)
	}
	rp.Restart(t)
	e.publish(t, 20, 0)
	c.waitCurrent(t, e, 40)
	c.v.check(t)
	if _, n := c.v.state(); n.Total() != 40 {
		t.Errorf("total %d after the restart, want 40", n.Total())
	}
}
