package redisconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/plumbing/redisconn"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

func TestModes(t *testing.T) {
	tests := []struct {
		url, mode string
		want      string // the client's type, or "error"
	}{
		{"redis://127.0.0.1:6379", "auto", "*redis.Client"},
		{"redis://h1:1?addr=h2:2&addr=h3:3", "auto", "*redis.ClusterClient"},
		{"redis://h1:1", "cluster", "*redis.ClusterClient"},
		{"redis://s1:26379?master_name=m&addr=s2:26379", "auto", "*redis.Client"},
		{"redis://s1:26379", "sentinel", "error"}, // no master_name
		{"http://h:1", "auto", "error"},
		{"redis://h:1", "ring", "error"},
	}
	for _, tt := range tests {
		c, err := redisconn.New(redisconn.Options{URL: tt.url, Mode: tt.mode}, redisconn.Tuning{})
		got := "error"
		if err == nil {
			got = typeName(c)
			c.Close()
		}
		if got != tt.want {
			t.Errorf("New(%q, %s) = %s (%v), want %s", tt.url, tt.mode, got, err, tt.want)
		}
	}
	o := redisconn.Options{URL: "redis://u:pw@h:1?master_name=m&password=masterpw"}
	if r := o.Redacted(); strings.Contains(r, "pw@") || strings.Contains(r, "masterpw") {
		t.Errorf("Redacted() = %q", r)
	}
}

func typeName(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	case *redis.Client:
		return "*redis.Client"
	}
	return "other"
}

func TestReadCounts(t *testing.T) {
	url, prefix := testenv.Redis(t)
	c, err := redisconn.New(redisconn.Options{URL: url}, redisconn.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	keys := task.Keys{Prefix: prefix}
	defer c.Del(ctx, keys.Counts())
	if _, _, ok, err := redisconn.ReadCounts(ctx, c, keys); ok || err != nil {
		t.Fatalf("empty Redis: ok %v err %v, want no watermark", ok, err)
	}
	c.HSet(ctx, keys.Counts(), "Low", 2, "Critical", 5, task.WatermarkField, 7)
	counts, w, ok, err := redisconn.ReadCounts(ctx, c, keys)
	if err != nil || !ok || w != 7 || counts != (task.Counts{2, 0, 0, 5}) {
		t.Fatalf("ReadCounts = %v %d %v %v", counts, w, ok, err)
	}
}

// A cluster client reads the map of slots to masters again within a
// second, so that a master's replica, promoted, is found quickly.
func TestClusterRereadsItsSlotsQuickly(t *testing.T) {
	c, err := redisconn.New(redisconn.Options{URL: "redis://h1:1", Mode: redisconn.ModeCluster}, redisconn.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.(*redis.ClusterClient).Options().ClusterStateReloadInterval; got != redisconn.ClusterStateReload || got > time.Second {
		t.Errorf("cluster state reload interval %v, want %v", got, redisconn.ClusterStateReload)
	}
}
