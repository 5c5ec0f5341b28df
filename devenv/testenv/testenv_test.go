package testenv_test

import (
	"context"
	"testing"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

func TestServers(t *testing.T) {
	s := testenv.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.JetStream(); err != nil {
		t.Fatal(err)
	}

	p := testenv.StartRedis(t)
	opt, _ := redis.ParseURL(p.URL())
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET succeeded with Redis stopped")
	}
	p.Restart(t)
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after restart: %q, %v; want the appended value back", v, err)
	}
}
