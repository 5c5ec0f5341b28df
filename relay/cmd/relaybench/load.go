package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// send writes tasks at the fixed rate for the duration, spread over a few
// senders that each keep their own schedule.
func send(ctx context.Context, o options) (int64, error) {
	senders := max(8, o.rate/10) // each sends 10 a second: a slow answer holds back few tasks
	var sent atomic.Int64
	var firstErr atomic.Value
	per := time.Duration(float64(time.Second) * float64(senders) / float64(o.rate))
	end := time.Now().Add(o.duration)
	// One kept-alive connection per sender, as senders of webhooks keep.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			next := time.Now().Add(time.Duration(s) * per / time.Duration(senders))
			for n := 0; ; n++ {
				if d := time.Until(next); d > 0 {
					time.Sleep(d) // pacing to the fixed rate
				}
				if time.Now().After(end) || ctx.Err() != nil {
					return
				}
				next = next.Add(per)
				id := int64(n*senders + s)
				t := task.Task{
					BatchID:  "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
					ID:       id,
					Owner:    padOwner("bench-"+strconv.FormatInt(id, 10), o.ownerSize),
					Priority: task.Priorities[id%task.NumPriorities],
				}
				// As long as a Standard Webhooks id ("msg_" and a KSUID).
				webhookID := fmt.Sprintf("msg_%010d%017d", os.Getpid(), id)
				if !o.webhookIDs {
					webhookID = ""
				}
				if err := postWebhook(ctx, hc, o.receiver, webhookID, t); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return sent.Load(), fmt.Errorf("send: %w", err)
	}
	return sent.Load(), nil
}

func padOwner(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat("x", n-len(s))
}

func postWebhook(ctx context.Context, hc *http.Client, url, id string, t task.Task) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(t.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set(task.HeaderID, id)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", id, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post %s: status %d", id, resp.StatusCode)
	}
	// The receiver's 200 says the task's stream sequence: the task is timed
	// from here, when it was accepted.
	if a := task.ParseAnswer(body); err == nil && a.Seq > 0 && ackTimes != nil {
		ackTimes.set(a.Seq, time.Now())
	}
	return nil
}
