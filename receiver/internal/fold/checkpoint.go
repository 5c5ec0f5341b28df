package fold

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/task"
	"github.com/nats-io/nats.go/jetstream"
)

// A checkpoint is the fold's State as of a stream sequence, kept in the
// NATS key-value bucket taskstream.CheckpointBucket, one key per Redis key
// prefix, replicated like the stream. It moves only forward: a write
// replaces the stored one only when it is further along (an update by
// revision). A Redis that lost everything is restored from the last
// checkpoint and the stream after it.
//
// Its value is the sequence in decimal and a newline, so that a reader
// can compare without decoding, then the state as gzipped JSON.
type checkpoint struct {
	Version int `json:"v"`
	// Stream is when the stream was created: a checkpoint of a stream that
	// was deleted and made anew is worth nothing.
	Stream  time.Time     `json:"stream"`
	Seq     uint64        `json:"seq"`
	Counts  task.Counts   `json:"counts"`
	Batches []batchRecord `json:"batches"`
}

// batchRecord is one Batch as a JSON array, [id, [counts], size, updated,
// last], to keep 10,000 batches well under NATS's 1 MB message.
type batchRecord Batch

func (b batchRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{b.ID, b.Counts[:], b.Size, b.Updated, b.Last})
}

func (b *batchRecord) UnmarshalJSON(data []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || len(raw) != 5 {
		return errors.New("fold: checkpoint batch is not [id, counts, size, updated, last]")
	}
	var counts []int64
	for i, dst := range []any{&b.ID, &counts, &b.Size, &b.Updated, &b.Last} {
		if err := json.Unmarshal(raw[i], dst); err != nil {
			return fmt.Errorf("fold: checkpoint batch: %w", err)
		}
	}
	if len(counts) != task.NumPriorities {
		return errors.New("fold: checkpoint batch counts are not four")
	}
	copy(b.Counts[:], counts)
	return nil
}

const checkpointVersion = 1

// checkpointKey is the bucket key of the checkpoints of keys' prefix.
func checkpointKey(keys task.Keys) string {
	prefix := keys.Prefix
	if prefix == "" {
		prefix = task.DefaultKeyPrefix
	}
	return "fold." + base64.RawURLEncoding.EncodeToString([]byte(prefix))
}

func encodeCheckpoint(st *State, created time.Time) ([]byte, error) {
	cp := checkpoint{Version: checkpointVersion, Stream: created.UTC(), Seq: st.Seq, Counts: st.Counts}
	for _, b := range st.Batches() {
		cp.Batches = append(cp.Batches, batchRecord(b))
	}
	var buf bytes.Buffer
	buf.WriteString(strconv.FormatUint(st.Seq, 10))
	buf.WriteByte('\n')
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(cp); err != nil {
		return nil, fmt.Errorf("fold: encode checkpoint: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("fold: encode checkpoint: %w", err)
	}
	return buf.Bytes(), nil
}

// checkpointSeq reads the sequence a checkpoint value is as of.
func checkpointSeq(v []byte) (uint64, bool) {
	line, _, ok := bytes.Cut(v, []byte("\n"))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(line), 10, 64)
	return n, err == nil
}

func decodeCheckpoint(v []byte, keep int) (*State, time.Time, error) {
	_, rest, ok := bytes.Cut(v, []byte("\n"))
	if !ok {
		return nil, time.Time{}, errors.New("fold: checkpoint without its sequence line")
	}
	zr, err := gzip.NewReader(bytes.NewReader(rest))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("fold: checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.NewDecoder(io.LimitReader(zr, 64<<20)).Decode(&cp); err != nil {
		return nil, time.Time{}, fmt.Errorf("fold: checkpoint: %w", err)
	}
	if cp.Version != checkpointVersion {
		return nil, time.Time{}, fmt.Errorf("fold: checkpoint version %d, want %d", cp.Version, checkpointVersion)
	}
	batches := make([]Batch, len(cp.Batches))
	for i, b := range cp.Batches {
		batches[i] = Batch(b)
	}
	st := NewState(cp.Seq, keep)
	st.Restore(cp.Seq, cp.Counts, batches)
	return st, cp.Stream, nil
}

// Checkpoints reads and writes the checkpoints of one key prefix.
type Checkpoints struct {
	kv   jetstream.KeyValue
	key  string
	keep int
}

// NewCheckpoints returns the checkpoints of keys in kv.
func NewCheckpoints(kv jetstream.KeyValue, keys task.Keys, keep int) *Checkpoints {
	return &Checkpoints{kv: kv, key: checkpointKey(keys), keep: keep}
}

// ErrNoCheckpoint is returned when no checkpoint fits.
var ErrNoCheckpoint = errors.New("fold: no checkpoint")

// Latest returns the newest checkpoint of the stream created at created.
func (c *Checkpoints) Latest(ctx context.Context, created time.Time) (*State, error) {
	e, err := c.kv.Get(ctx, c.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("fold: read checkpoint: %w", err)
	}
	st, at, err := decodeCheckpoint(e.Value(), c.keep)
	if err != nil {
		return nil, err
	}
	if !at.Equal(created.UTC()) {
		return nil, ErrNoCheckpoint
	}
	return st, nil
}

// AtOrBelow returns the newest checkpoint still kept whose sequence is at
// most seq, of the stream created at created.
func (c *Checkpoints) AtOrBelow(ctx context.Context, seq uint64, created time.Time) (*State, error) {
	hist, err := c.kv.History(ctx, c.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("fold: read checkpoints: %w", err)
	}
	for i := len(hist) - 1; i >= 0; i-- {
		e := hist[i]
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		if n, ok := checkpointSeq(e.Value()); !ok || n > seq {
			continue
		}
		st, at, err := decodeCheckpoint(e.Value(), c.keep)
		if err == nil && at.Equal(created.UTC()) {
			return st, nil
		}
	}
	return nil, ErrNoCheckpoint
}

// Write stores st as the checkpoint unless the stored one is further
// along (for the same stream). It reports whether it wrote.
func (c *Checkpoints) Write(ctx context.Context, st *State, created time.Time) (bool, error) {
	data, err := encodeCheckpoint(st, created)
	if err != nil {
		return false, err
	}
	for range 3 {
		e, err := c.kv.Get(ctx, c.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err = c.kv.Create(ctx, c.key, data); errors.Is(err, jetstream.ErrKeyExists) {
				continue // written meanwhile by another receiver
			}
			return err == nil, wrapWrite(err, st.Seq)
		}
		if err != nil {
			return false, wrapWrite(err, st.Seq)
		}
		if n, ok := checkpointSeq(e.Value()); ok && n >= st.Seq {
			if _, at, err := decodeCheckpoint(e.Value(), c.keep); err == nil && at.Equal(created.UTC()) {
				return false, nil // another receiver is further along
			}
		}
		_, err = c.kv.Update(ctx, c.key, data, e.Revision())
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			continue // updated meanwhile: look again
		}
		return err == nil, wrapWrite(err, st.Seq)
	}
	return false, nil
}

func wrapWrite(err error, seq uint64) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("fold: write checkpoint at %d: %w", seq, err)
}
