package service_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/receiver/internal/service"
	"github.com/hookpipe/hookpipe/task"
)

func TestUnsignedOnlyOnLoopbackUnlessAllowed(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	token := "an-access-token-long-enough"
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"loopback, unsigned", []string{"--addr", "127.0.0.1:5001"}, true},
		{"every interface, unsigned", []string{"--addr", ":5001", "--access-token", token}, false},
		{"every interface, unsigned, allowed", []string{"--addr", ":5001", "--allow-unsigned", "--access-token", token}, true},
		{"every interface, signed", []string{"--addr", "0.0.0.0:5001", "--webhook-secret", secret, "--access-token", token}, true},
		{"every interface, signed, no access token", []string{"--addr", "0.0.0.0:5001", "--webhook-secret", secret}, false},
		{"a secret of spaces", []string{"--webhook-secret", "   "}, false},
		{"a one-byte secret", []string{"--webhook-secret", "whsec_AA=="}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := service.DefaultConfig()
			err := c.Parse(tt.args, lookupIn(nil), io.Discard)
			if (err == nil) != tt.ok {
				t.Fatalf("Parse(%q) = %v, want ok %v", tt.args, err, tt.ok)
			}
		})
	}
}

// lookupIn looks variables up in env, as os.LookupEnv does in the
// process's environment.
func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// A secret set but blank is a secret that went missing on the way (an
// empty variable in a deployment's file), not a choice of none: the
// receiver refuses to start rather than take unsigned webhooks. Unset is
// how to go without.
func TestBlankSecretIsAnError(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error; "" for none
	}{
		{"unset: unsigned on loopback", nil, nil, ""},
		{"empty variable", nil, map[string]string{"HOOKPIPE_WEBHOOK_SECRET": ""}, "HOOKPIPE_WEBHOOK_SECRET is set but blank"},
		{"variable of spaces", nil, map[string]string{"HOOKPIPE_WEBHOOK_SECRET": " \t"}, "HOOKPIPE_WEBHOOK_SECRET is set but blank"},
		{"empty flag", []string{"--webhook-secret", ""}, nil, "webhook-secret: set but blank"},
		{"empty flag over a secret", []string{"--webhook-secret="}, map[string]string{"HOOKPIPE_WEBHOOK_SECRET": secret}, "webhook-secret: set but blank"},
		{"empty variable, a secret by flag", []string{"--webhook-secret", secret}, map[string]string{"HOOKPIPE_WEBHOOK_SECRET": ""}, ""},
		{"empty access token", nil, map[string]string{"HOOKPIPE_ACCESS_TOKEN": ""}, "HOOKPIPE_ACCESS_TOKEN is set but blank"},
		{"empty access token flag", []string{"--access-token", ""}, nil, "access-token: set but blank"},
		{"empty NATS password", nil, map[string]string{"NATS_PASSWORD": ""}, "NATS_PASSWORD is set but blank"},
		{"empty NATS token", nil, map[string]string{"HOOKPIPE_NATS_TOKEN": ""}, "HOOKPIPE_NATS_TOKEN is set but blank"},
		// Only secrets: another setting set to "" reads as unset, as before.
		{"empty key prefix", nil, map[string]string{"HOOKPIPE_KEY_PREFIX": ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := service.DefaultConfig()
			err := c.Parse(tt.args, lookupIn(tt.env), io.Discard)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Parse(%q) with %v: %v, want no error", tt.args, tt.env, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Parse(%q) with %v: %v, want an error with %q", tt.args, tt.env, err, tt.want)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("the error shows the secret: %v", err)
			}
			if err == nil && tt.args == nil && c.WebhookSecret != "" {
				t.Fatalf("webhook secret %q, want none", c.WebhookSecret)
			}
		})
	}
}

func TestMetricsNeedTheAccessToken(t *testing.T) {
	const token = "metrics-token-of-some-length"
	e := newEnv(t, func(c *service.Config) { c.Access.Token = token })
	url := strings.TrimSuffix(e.url, e.m.Config.Path) + "/metrics"
	get := func(auth string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if got := get(""); got != 401 {
		t.Errorf("/metrics without the token: %d, want 401", got)
	}
	if got := get("Bearer nope-nope-nope-nope"); got != 401 {
		t.Errorf("/metrics with a wrong token: %d, want 401", got)
	}
	if got := get("Bearer " + token); got != 200 {
		t.Errorf("/metrics with the token: %d, want 200", got)
	}
}

// An unsigned receiver takes webhooks only under the names it answers
// to: a page whose name was rebound to 127.0.0.1 gets 421 and changes
// nothing; a signed receiver needs no such check.
func TestUnsignedReceiverChecksHost(t *testing.T) {
	e := newEnv(t, nil)
	body := sampleTask(1).Encode()
	if r := e.post(t, "msg_host", body, map[string]string{"Host": "evil.example"}); r.status != http.StatusMisdirectedRequest {
		t.Fatalf("Host evil.example: %d %s, want 421", r.status, r.body)
	}
	if r := e.post(t, "msg_host", body, nil); r.status != 200 {
		t.Fatalf("Host 127.0.0.1: %d %s", r.status, r.body)
	}
	if got := e.counts(t).Total(); got != 1 {
		t.Fatalf("total %d, want 1", got)
	}
}

func TestDataEdges(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("x", 65)
	if r := e.post(t, long, sampleTask(1).Encode(), nil); r.status != 400 || !strings.Contains(r.body, "64") {
		t.Errorf("a 65-character webhook id: %d %s, want 400", r.status, r.body)
	}
	bidi := `{"batchid":"0f8fad5b-d9cb-469f-a165-70867728950e","id":1,"owner":"Ann\u202ELaN","priority":"Low"}`
	r := e.post(t, "msg_bidi", []byte(bidi), nil)
	var eb task.ErrorAnswer
	json.Unmarshal([]byte(r.body), &eb)
	if r.status != 400 || eb.Field != "owner" {
		t.Errorf("owner with U+202E: %d %s, want 400 naming owner", r.status, r.body)
	}
	// The same batch in upper and lower case is one batch.
	lower := sampleTask(2)
	upper := strings.Replace(string(lower.Encode()), lower.BatchID, strings.ToUpper(lower.BatchID), 1)
	if r := e.post(t, "msg_lower", lower.Encode(), nil); r.status != 200 {
		t.Fatal(r.status, r.body)
	}
	if r := e.post(t, "msg_upper", []byte(upper), nil); r.status != 200 {
		t.Fatal(r.status, r.body)
	}
	e.counts(t)
	if n, _ := e.rdb.ZCard(t.Context(), e.keys.Batches()).Result(); n != 1 {
		t.Errorf("%d batches for one batch id in two cases, want 1", n)
	}
}

// Timestamps that are not canonical decimal are refused with 401, even
// with a signature over those very bytes.
func TestSignedTimestampEdges(t *testing.T) {
	secret, _ := task.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	e := newEnv(t, func(c *service.Config) { c.WebhookSecret = secret.String() })
	body := sampleTask(3).Encode()
	now := fmt.Sprint(time.Now().Unix())
	for _, ts := range []string{"+" + now, "0" + now, now + ".0", "9223372036854775807"} {
		r := e.post(t, "msg_ts", body, map[string]string{
			task.HeaderTimestamp: ts,
			task.HeaderSignature: signRaw(secret, "msg_ts", ts, body),
		})
		if r.status != 401 {
			t.Errorf("timestamp %q: %d %s, want 401", ts, r.status, r.body)
		}
	}
	if r := e.post(t, "msg_ts", body, map[string]string{
		task.HeaderTimestamp: now, task.HeaderSignature: signRaw(secret, "msg_ts", now, body),
	}); r.status != 200 {
		t.Fatalf("canonical timestamp: %d %s", r.status, r.body)
	}
}

// At start the receiver reads Redis's memory bound and eviction policy and
// warns when its keys are not safe.
func TestRedisMemoryWarnings(t *testing.T) {
	ns := testenv.NATS(t)
	rp := testenv.StartRedis(t)
	rdb := rp.Client(t)
	for _, tt := range []struct {
		max, policy, want string
	}{
		{"0", "noeviction", "unbounded"},
		{"100mb", "allkeys-lru", "evict any key"},
		{"100mb", "volatile-ttl", "seen webhook ids would be forgotten"},
		{"100mb", "noeviction", "redis memory bounded"},
	} {
		t.Run(tt.policy+" "+tt.max, func(t *testing.T) {
			rdb.ConfigSet(t.Context(), "maxmemory", tt.max)
			rdb.ConfigSet(t.Context(), "maxmemory-policy", tt.policy)
			var logs syncBuffer
			m := service.NewMain()
			m.Config.Addr = "127.0.0.1:0"
			m.Config.NATS.URL, m.Config.Redis.URL, m.Config.KeyPrefix = ns.ClientURL(), rp.URL(), testenv.KeyPrefix(t)
			m.Log = slog.New(slog.NewTextHandler(&logs, nil))
			if err := m.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), tt.want) }, "no %q in the logs", tt.want)
		})
	}
	rdb.ConfigSet(t.Context(), "maxmemory", "0")
}
