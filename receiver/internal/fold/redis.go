package fold

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

// applyScript folds a run of events into Redis, atomically, over keys that
// share one hash tag: the counts hash with its watermark W, the batch
// index and the hashes of the batches.
//
// KEYS: the counts hash, the batch index, then the hash of every batch the
// events touch (declared for Redis Cluster; all in one slot).
// ARGV: from and last, the stream sequences the run covers (from is the
// one after the fold's previous run, so messages the fold skipped count as
// covered); keep, the most batches kept; the batch hash prefix; then for
// each event its sequence, priority, batch id, batch size (0 unknown) and
// stored time in ms.
//
// Only events above W are applied, event by event as State.Apply does:
// a batch new to the index may push out the least recent one, whose hash
// goes with it. It refuses a run that does not start at or before W+1
// ("gap", W: the fold rewinds to W+1) and one when W is absent
// ("absent": Redis lost the projection, the fold restores it), so that a
// run repeated, retried after a timeout or applied by several receivers
// never counts twice and never skips. It returns "ok" and the new W.
var applyScript = redis.NewScript(`
local w = redis.call('HGET', KEYS[1], '` + task.WatermarkField + `')
if not w then return {'absent', 0} end
w = tonumber(w)
local from, last = tonumber(ARGV[1]), tonumber(ARGV[2])
if from > w + 1 then return {'gap', w} end
if last <= w then return {'ok', w} end
local keep, prefix = tonumber(ARGV[3]), ARGV[4]
local total, deltas, order = {}, {}, {}
local card = redis.call('ZCARD', KEYS[2])
for i = 5, #ARGV, 5 do
  local seq = tonumber(ARGV[i])
  if seq > w then
    local prio, bid, size, at = ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
    total[prio] = (total[prio] or 0) + 1
    local d = deltas[bid]
    if not d then
      -- First event of the batch in this run: it becomes the most recent
      -- batch at once, so the least recent one, if the index is full, is
      -- one this run does not touch.
      if not redis.call('ZSCORE', KEYS[2], bid) then card = card + 1 end
      redis.call('ZADD', KEYS[2], seq, bid)
      if card > keep then
        local out = redis.call('ZPOPMIN', KEYS[2])
        redis.call('DEL', prefix .. out[1])
        card = card - 1
      end
      d = {c = {}}
      deltas[bid] = d
      order[#order+1] = bid
    end
    d.c[prio] = (d.c[prio] or 0) + 1
    if size ~= '0' then d.size = size end
    d.at, d.last = at, seq
  end
end
for prio, n in pairs(total) do redis.call('HINCRBY', KEYS[1], prio, n) end
for _, bid in ipairs(order) do
  local d, key = deltas[bid], prefix .. bid
  for prio, n in pairs(d.c) do redis.call('HINCRBY', key, prio, n) end
  if d.size then redis.call('HSET', key, '` + task.BatchSizeField + `', d.size) end
  redis.call('HSET', key, '` + task.BatchUpdatedField + `', d.at)
  redis.call('ZADD', KEYS[2], d.last, bid)
end
redis.call('HSET', KEYS[1], '` + task.WatermarkField + `', last)
return {'ok', last}
`)

// restoreScript replaces the whole projection with a State, when the
// watermark is still what the fold saw (ARGV[1]: "" for absent), so that
// two receivers restoring at once do not undo each other.
//
// KEYS: the counts hash, the batch index. ARGV: the expected watermark,
// the new one, the batch hash prefix, the four totals, then for each batch
// its id, four counts, size, updated and last sequence.
var restoreScript = redis.NewScript(`
local w = redis.call('HGET', KEYS[1], '` + task.WatermarkField + `')
if (ARGV[1] == '' and w) or (ARGV[1] ~= '' and w ~= ARGV[1]) then return 'changed' end
local prefix = ARGV[3]
for _, bid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do redis.call('DEL', prefix .. bid) end
redis.call('DEL', KEYS[1], KEYS[2])
local names = {` + priorityNames + `}
for i = 1, 4 do redis.call('HSET', KEYS[1], names[i], ARGV[3+i]) end
for i = 8, #ARGV, 8 do
  local key = prefix .. ARGV[i]
  for j = 1, 4 do
    if ARGV[i+j] ~= '0' then redis.call('HSET', key, names[j], ARGV[i+j]) end
  end
  if ARGV[i+5] ~= '0' then redis.call('HSET', key, '` + task.BatchSizeField + `', ARGV[i+5]) end
  redis.call('HSET', key, '` + task.BatchUpdatedField + `', ARGV[i+6])
  redis.call('ZADD', KEYS[2], ARGV[i+7], ARGV[i])
end
redis.call('HSET', KEYS[1], '` + task.WatermarkField + `', ARGV[2])
return 'restored'
`)

// snapshotScript reads the whole projection at once: the counts hash, the
// batch index with its scores, and every batch hash in index order.
// KEYS: the counts hash, the batch index. ARGV: the batch hash prefix.
var snapshotScript = redis.NewScript(`
local idx = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local out = {redis.call('HGETALL', KEYS[1]), idx}
for i = 1, #idx, 2 do out[#out+1] = redis.call('HGETALL', ARGV[1] .. idx[i]) end
return out
`)

// priorityNames lists the priorities as Lua strings, in task.Priorities
// order.
var priorityNames = func() string {
	var b strings.Builder
	for i, p := range task.Priorities {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + p.String() + "'")
	}
	return b.String()
}()

// Results of applyScript.
const (
	applied = "ok"
	gap     = "gap"
	absent  = "absent"
)

// Projection is the fold's Redis side: the keys it writes and the scripts
// that write them.
type Projection struct {
	rdb  redis.UniversalClient
	keys task.Keys
	keep int
}

// NewProjection returns the projection of keys in rdb, keeping keep
// batches.
func NewProjection(rdb redis.UniversalClient, keys task.Keys, keep int) *Projection {
	return &Projection{rdb: rdb, keys: keys, keep: keep}
}

func (p *Projection) batchPrefix() string { return strings.TrimSuffix(p.keys.Batch("x"), "x") }

// apply runs applyScript over evs, which cover the stream from from to
// last. It returns the script's verdict and the watermark after it.
func (p *Projection) apply(ctx context.Context, from, last uint64, evs []Event, keys []string, args []any) (verdict string, w uint64, err error) {
	keys = append(keys[:0], p.keys.Counts(), p.keys.Batches())
	args = append(args[:0], from, last, p.keep, p.batchPrefix())
	seen := make(map[string]bool, 8)
	for i := range evs {
		ev := &evs[i]
		if ev.Skipped {
			continue
		}
		t := ev.Task
		if !seen[t.BatchID] {
			seen[t.BatchID] = true
			keys = append(keys, p.keys.Batch(t.BatchID))
		}
		args = append(args, ev.Seq, t.Priority.String(), t.BatchID, t.BatchSize, ev.Time.UnixMilli())
	}
	res, err := applyScript.Run(ctx, p.rdb, keys, args...).Slice()
	if err != nil {
		return "", 0, fmt.Errorf("fold: apply %d..%d: %w", from, last, err)
	}
	if len(res) != 2 {
		return "", 0, fmt.Errorf("fold: apply %d..%d: unexpected answer %v", from, last, res)
	}
	verdict, _ = res[0].(string)
	n, _ := res[1].(int64)
	return verdict, uint64(n), nil
}

// writeSeen records the webhook id of every event that has one, each
// until its own stored time plus ttl, before the watermark passes them:
// from then on a retry of the id is answered from Redis. The keys spread
// over the cluster's slots; writing one twice changes nothing.
func (p *Projection) writeSeen(ctx context.Context, evs []Event, ttl time.Duration, now time.Time) error {
	pipe := p.rdb.Pipeline()
	n := 0
	for i := range evs {
		ev := &evs[i]
		if ev.MsgID == "" || ev.Skipped {
			continue
		}
		until := ev.Time.Add(ttl)
		if !until.After(now) {
			continue // its dedupe window is over already
		}
		v := task.Seen{Fingerprint: ev.Fingerprint, Seq: ev.Seq}.String()
		pipe.SetArgs(ctx, p.keys.Seen(ev.MsgID), v, redis.SetArgs{ExpireAt: until})
		n++
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("fold: write %d seen keys: %w", n, err)
	}
	return nil
}

// Watermark reads the watermark: the last sequence Redis has folded in, ok
// false when it has none.
func (p *Projection) Watermark(ctx context.Context) (w uint64, ok bool, err error) {
	v, err := p.rdb.HGet(ctx, p.keys.Counts(), task.WatermarkField).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("fold: read watermark: %w", err)
	}
	w, err = strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("fold: watermark %q is not a sequence", v)
	}
	return w, true, nil
}

// Restore writes st as the whole projection, when the watermark is still
// expected (expectAbsent: none). It reports false when it changed
// meanwhile, and nothing was written.
func (p *Projection) Restore(ctx context.Context, st *State, expected uint64, expectAbsent bool) (bool, error) {
	exp := ""
	if !expectAbsent {
		exp = strconv.FormatUint(expected, 10)
	}
	batches := st.Batches()
	args := make([]any, 0, 7+8*len(batches))
	args = append(args, exp, st.Seq, p.batchPrefix())
	for _, n := range st.Counts {
		args = append(args, n)
	}
	for _, b := range batches {
		args = append(args, b.ID, b.Counts[0], b.Counts[1], b.Counts[2], b.Counts[3], b.Size, b.Updated, b.Last)
	}
	v, err := restoreScript.Run(ctx, p.rdb, []string{p.keys.Counts(), p.keys.Batches()}, args...).Text()
	if err != nil {
		return false, fmt.Errorf("fold: restore at %d: %w", st.Seq, err)
	}
	return v == "restored", nil
}

// Snapshot reads the whole projection in one script: the state Redis
// holds, and whether it has a watermark at all.
func (p *Projection) Snapshot(ctx context.Context) (st *State, ok bool, err error) {
	res, err := snapshotScript.Run(ctx, p.rdb, []string{p.keys.Counts(), p.keys.Batches()}, p.batchPrefix()).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("fold: read the projection: %w", err)
	}
	if len(res) < 2 {
		return nil, false, fmt.Errorf("fold: read the projection: unexpected answer")
	}
	fields := pairs(res[0])
	counts, w, ok, err := task.ParseCounts(fields)
	if err != nil {
		return nil, false, err
	}
	idx, _ := res[1].([]any)
	batches := make([]Batch, 0, len(idx)/2)
	for i := 0; i+1 < len(idx); i += 2 {
		id, _ := idx[i].(string)
		score, _ := idx[i+1].(string)
		last, err := strconv.ParseFloat(score, 64)
		if err != nil {
			return nil, false, fmt.Errorf("fold: batch index score %q", score)
		}
		var h map[string]string
		if 2+i/2 < len(res) {
			h = pairs(res[2+i/2])
		}
		sum, err := task.ParseBatch(id, h)
		if err != nil {
			return nil, false, err
		}
		b := Batch{ID: id, Counts: sum.Counts, Size: sum.Size, Last: uint64(last)}
		if !sum.Updated.IsZero() {
			b.Updated = sum.Updated.UnixMilli()
		}
		batches = append(batches, b)
	}
	st = NewState(w, p.keep)
	st.Restore(w, counts, batches)
	return st, ok, nil
}

// pairs turns a flat reply of field and value into a map.
func pairs(v any) map[string]string {
	flat, _ := v.([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		s, _ := flat[i+1].(string)
		m[k] = s
	}
	return m
}
