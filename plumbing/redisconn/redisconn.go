// Package redisconn connects a hookpipe service to Redis the go-redis way:
// one server, a Redis Cluster or a master behind Sentinel, all from one URL,
// and reads the counts hash, the one place that does.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis server used when none is given.
const DefaultURL = "redis://127.0.0.1:6379"

// Modes of Options.Mode.
const (
	// ModeAuto is a Sentinel setup when the URL names a master_name, a
	// cluster when it lists more addresses (addr=), else one server.
	ModeAuto = "auto"
	// ModeSingle is one server: redis://[user:password@]host:port[/db].
	ModeSingle = "single"
	// ModeCluster is a Redis Cluster reached from one or more seed nodes:
	// redis://[user:password@]h1:p1?addr=h2:p2&addr=h3:p3.
	ModeCluster = "cluster"
	// ModeSentinel is a master found through Sentinel:
	// redis://[sentinel-user:sentinel-password@]s1:26379?master_name=m&addr=s2:26379
	// with the master's own credentials as username= and password=.
	ModeSentinel = "sentinel"
)

// Options say where Redis is.
type Options struct {
	// URL is the server, cluster or Sentinel setup; default DefaultURL
	// (--redis-url, REDIS_URL). See the modes for its forms.
	URL string
	// Mode says how to read URL: auto, single, cluster or sentinel; default
	// auto (--redis-mode, HOOKPIPE_REDIS_MODE). Give cluster for a cluster
	// named by a single seed node.
	Mode string
}

// DefaultOptions returns the defaults documented on Options.
func DefaultOptions() Options { return Options{URL: DefaultURL, Mode: ModeAuto} }

// Bind adds the Redis flags to s.
func (o *Options) Bind(s *envflag.Set) {
	s.String(&o.URL, "redis-url", "REDIS_URL", "Redis URL: one server, a cluster (?addr=h2:p2&addr=…) or Sentinel (?master_name=m&addr=…)")
	s.String(&o.Mode, "redis-mode", "HOOKPIPE_REDIS_MODE", "how to read the Redis URL: auto, single, cluster or sentinel")
}

// Validate reports a URL that does not parse for its mode.
func (o Options) Validate() error {
	_, err := o.mode()
	return err
}

func (o Options) mode() (string, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		return "", errors.New("--redis-url must be redis://host:port, rediss://… or unix://…")
	}
	switch o.Mode {
	case ModeSingle, ModeCluster, ModeSentinel:
		return o.Mode, nil
	case ModeAuto, "":
		q := u.Query()
		switch {
		case q.Has("master_name"):
			return ModeSentinel, nil
		case q.Has("addr"):
			return ModeCluster, nil
		}
		return ModeSingle, nil
	}
	return "", fmt.Errorf("--redis-mode %q must be auto, single, cluster or sentinel", o.Mode)
}

// Redacted returns the URL with its password hidden, for logs.
func (o Options) Redacted() string {
	u, err := url.Parse(o.URL)
	if err != nil {
		return "(unparsable)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Tuning is what a service sets on every connection, whichever the mode.
type Tuning struct {
	// DialTimeout, ReadTimeout and WriteTimeout bound each step; 0 keeps
	// go-redis's defaults.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// MaxRetries is how often go-redis retries a failed command; -1 for
	// never, 0 for its default.
	MaxRetries int
	// PoolSize is the connections per node; 0 for go-redis's default.
	PoolSize int
	// Name is the client name Redis shows in CLIENT LIST.
	Name string
}

// ClusterStateReload is how old a cluster client's map of slots to masters
// may grow before a command makes it read the map again. go-redis keeps a
// map for a minute, and a dead master does not answer MOVED: until the
// next read every command for its slots would go to the dead address, long
// after its replica had taken over. One CLUSTER SLOTS a second is cheap.
const ClusterStateReload = time.Second

// New returns a client for o: a *redis.Client for one server or Sentinel,
// a *redis.ClusterClient for a cluster.
func New(o Options, t Tuning) (redis.UniversalClient, error) {
	mode, err := o.mode()
	if err != nil {
		return nil, err
	}
	switch mode {
	case ModeCluster:
		co, err := redis.ParseClusterURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		t.apply(&co.DialTimeout, &co.ReadTimeout, &co.WriteTimeout, &co.MaxRetries, &co.PoolSize, &co.ClientName)
		if co.ClusterStateReloadInterval == 0 {
			co.ClusterStateReloadInterval = ClusterStateReload
		}
		return redis.NewClusterClient(co), nil
	case ModeSentinel:
		fo, err := redis.ParseFailoverURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		if fo.MasterName == "" {
			return nil, errors.New("--redis-url: a Sentinel URL needs master_name=")
		}
		t.apply(&fo.DialTimeout, &fo.ReadTimeout, &fo.WriteTimeout, &fo.MaxRetries, &fo.PoolSize, &fo.ClientName)
		return redis.NewFailoverClient(fo), nil
	}
	so, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	t.apply(&so.DialTimeout, &so.ReadTimeout, &so.WriteTimeout, &so.MaxRetries, &so.PoolSize, &so.ClientName)
	return redis.NewClient(so), nil
}

// apply sets a client's options from t where t sets them, whichever kind
// of client they are for.
func (t Tuning) apply(dial, read, write *time.Duration, retries, pool *int, name *string) {
	*dial, *read, *write = or(t.DialTimeout, *dial), or(t.ReadTimeout, *read), or(t.WriteTimeout, *write)
	*retries = orInt(t.MaxRetries, *retries)
	*pool = orInt(t.PoolSize, *pool)
	*name = t.Name
}

func or(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

func orInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// ReadCounts reads the counts hash of keys in one command: the totals
// per priority and the watermark they are exact as of (ok false when Redis
// holds none).
func ReadCounts(ctx context.Context, rdb redis.Cmdable, keys task.Keys) (c task.Counts, watermark uint64, ok bool, err error) {
	m, err := rdb.HGetAll(ctx, keys.Counts()).Result()
	if err != nil {
		return c, 0, false, fmt.Errorf("redis: read %s: %w", keys.Counts(), err)
	}
	return task.ParseCounts(m)
}

// Quiet drops go-redis's own log lines (a failed dial is logged per
// attempt); services report outages themselves, once.
func Quiet() { redis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
