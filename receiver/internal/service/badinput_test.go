package service_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/receiver/internal/service"
	"github.com/hookpipe/hookpipe/task"
	"github.com/hookpipe/hookpipe/testdata"
)

// TestBadRequestsChangeNothing sends requests that are wrong at the HTTP
// level (method, path, content type, size, signature, id) to a receiver
// that requires signatures, and checks each status and that no count or
// stream message appeared.
func TestBadRequestsChangeNothing(t *testing.T) {
	secret, _ := task.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	other, _ := task.ParseSecret("whsec_b3RoZXItc2VjcmV0")
	e := newEnv(t, func(c *service.Config) {
		c.WebhookSecret = secret.String()
		c.MaxBodySize = 1024
	})
	good := sampleTask(2).Encode()
	now := time.Now()
	sign := func(s task.Secret, id string, ts time.Time, body []byte) map[string]string {
		return map[string]string{
			task.HeaderID:        id,
			task.HeaderTimestamp: fmt.Sprint(ts.Unix()),
			task.HeaderSignature: s.Sign(id, ts, body),
		}
	}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for a, b := range h {
			out[a] = b
		}
		out[k] = v
		return out
	}
	signed := sign(secret, "msg_1", now, good)
	big := bytes.Repeat([]byte(" "), 2048)
	tests := []struct {
		name   string
		method string
		path   string
		ctype  string
		body   []byte
		hdr    map[string]string
		status int
	}{
		{"GET", http.MethodGet, "", "", nil, signed, 405},
		{"PUT", http.MethodPut, "", "", good, signed, 405},
		{"unknown path", "", "/consumetask", "", good, signed, 404},
		{"text/plain", "", "", "text/plain", good, signed, 415},
		{"form", "", "", "application/x-www-form-urlencoded", good, signed, 415},
		{"no content type", "", "", "-", good, signed, 415},
		{"latin-1 charset", "", "", "application/json; charset=iso-8859-1", good, signed, 415},
		{"body over limit", "", "", "", append(append([]byte{}, good...), big...), sign(secret, "msg_1", now, append(append([]byte{}, good...), big...)), 413},
		{"unsigned", "", "", "", good, map[string]string{task.HeaderID: "msg_1"}, 401},
		{"other secret", "", "", "", good, sign(other, "msg_1", now, good), 401},
		{"signature of another body", "", "", "", good, sign(secret, "msg_1", now, sampleTask(3).Encode()), 401},
		{"signature of another id", "", "", "", good, with(sign(secret, "msg_2", now, good), task.HeaderID, "msg_1"), 401},
		{"stale", "", "", "", good, sign(secret, "msg_1", now.Add(-6*time.Minute), good), 401},
		{"future", "", "", "", good, sign(secret, "msg_1", now.Add(6*time.Minute), good), 401},
		{"timestamp not a number", "", "", "", good, with(signed, task.HeaderTimestamp, "soon"), 401},
		{"missing timestamp", "", "", "", good, with(signed, task.HeaderTimestamp, ""), 401},
		{"missing id", "", "", "", good, with(signed, task.HeaderID, ""), 401},
		{"id with spaces", "", "", "", good, sign(secret, "msg 1", now, good), 400},
		{"id too long", "", "", "", good, sign(secret, strings.Repeat("x", 257), now, good), 400},
		{"signed bad json", "", "", "", []byte(`{"batchid":`), sign(secret, "msg_1", now, []byte(`{"batchid":`)), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			url := e.url
			if tt.path != "" {
				url = strings.TrimSuffix(url, "/consumetasks") + tt.path
			}
			req, _ := http.NewRequest(method, url, bytes.NewReader(tt.body))
			switch tt.ctype {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.ctype)
			}
			for k, v := range tt.hdr {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d %s, want %d", res.StatusCode, b, tt.status)
			}
			if !strings.HasPrefix(string(b), `{"error":"`) {
				t.Errorf("body %s is not a JSON error", b)
			}
		})
	}
	if got := e.counts(t); got.Total() != 0 {
		t.Fatalf("bad requests changed the counts to %v", got)
	}
	if _, total := e.streamMsgs(t); total != 0 {
		t.Fatalf("bad requests published %d messages", total)
	}
	// The same receiver still takes a good request: the refusals above were
	// for the input, not a broken setup.
	if r := e.post(t, "", good, signed); r.status != 200 {
		t.Fatalf("good signed request: %d %s", r.status, r.body)
	}
}

// TestBadCorpusChangesNothing posts every body of the shared bad-input
// corpus (testdata/bad) to a receiver without a secret and checks the
// status, the field the error names, and that nothing was counted or
// published.
func TestBadCorpusChangesNothing(t *testing.T) {
	cases, err := testdata.BadCases()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 25 {
		t.Fatalf("corpus has %d cases, want at least 25", len(cases))
	}
	e := newEnv(t, nil)
	for i, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			r := e.post(t, fmt.Sprintf("msg_bad_%d", i), c.Body, map[string]string{"Content-Type": c.ContentType})
			if r.status != c.Status {
				t.Fatalf("%s: status %d %s, want %d", c.Description, r.status, r.body, c.Status)
			}
			var body struct{ Error, Field string }
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error == "" {
				t.Fatalf("body %q is not a JSON error", r.body)
			}
			if c.Status == 400 && (body.Field != c.Field || !strings.Contains(body.Error, c.Problem)) {
				t.Errorf("%s: error %q on field %q, want field %q and %q", c.Description, body.Error, body.Field, c.Field, c.Problem)
			}
		})
	}
	if got := e.counts(t); got.Total() != 0 {
		t.Fatalf("bad bodies changed the counts to %v", got)
	}
	if _, total := e.streamMsgs(t); total != 0 {
		t.Fatalf("bad bodies published %d messages", total)
	}
	// Redis holds the projection of an empty stream and nothing else.
	if n, _ := e.rdb.Keys(context.Background(), e.keys.Prefix+"*").Result(); len(n) != 1 || n[0] != e.keys.Counts() {
		t.Fatalf("bad bodies left Redis keys %v, want only %s", n, e.keys.Counts())
	}
}

// TestOversizedBodyGetsItsAnswer: a sender still writing a body over the
// limit when the receiver refuses it gets the 413, not a reset connection
// (the receiver reads and drops the rest before it closes).
func TestOversizedBodyGetsItsAnswer(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.MaxBodySize = 1024 })
	addr := strings.TrimPrefix(strings.TrimSuffix(e.url, e.m.Config.Path), "http://")
	const size, chunks = 256 << 10, 16
	for range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", e.m.Config.Path, size)
		chunk := bytes.Repeat([]byte(" "), size/chunks)
		for i := range chunks {
			if _, err := conn.Write(chunk); err != nil {
				t.Fatalf("writing chunk %d of the body: %v", i, err)
			}
			time.Sleep(5 * time.Millisecond) // a sender on a slower link
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		res.Body.Close()
		conn.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", res.StatusCode)
		}
	}
	if got := e.counts(t).Total(); got != 0 {
		t.Fatalf("counts %d", got)
	}
}
