// Package generate makes batches of fake tasks, as the tutorial's producer
// did with Faker: English owner names, one of the four priorities, a batch
// size drawn uniformly between a minimum and a maximum.
//
// A Generator is a deterministic stream: two generators made with the same
// seed and bounds yield the same batches, batch ids and webhook ids included,
// in the same order.
package generate

import (
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"sync"

	"github.com/go-faker/faker/v4"

	"github.com/hookpipe/hookpipe/task"
)

// Batch is one generated batch of tasks, made one task at a time as it is
// sent: a batch of a million tasks costs the memory of its names seen so
// far (they are unique within the batch), not of its tasks.
type Batch struct {
	// ID is the batch's UUID, shared by all its tasks.
	ID string
	// Size is how many tasks it has, numbered from 0.
	Size int

	rng  *rand.Rand
	src  rand.Source
	seen map[string]struct{}
	next int
}

// Next returns the batch's next task, carrying the batch's size, and its
// webhook id, derived from the seed for recordings that must be replayed
// with the same ids. ok is false once all were made. A Batch is used by
// one goroutine at a time.
func (b *Batch) Next() (t task.Task, id string, ok bool) {
	if b.next >= b.Size {
		return task.Task{}, "", false
	}
	fakerMu.Lock()
	faker.SetRandomSource(b.src)
	owner := uniqueName(b.seen)
	fakerMu.Unlock()
	t = task.Task{
		BatchID:   b.ID,
		ID:        int64(b.next),
		Owner:     owner,
		Priority:  task.Priorities[b.rng.Intn(task.NumPriorities)],
		BatchSize: int64(b.Size),
	}
	b.next++
	return t, webhookID(b.rng), true
}

// All makes every task left at once, with its webhook id: for recordings
// and tests, which hold them anyway.
func (b *Batch) All() (tasks []task.Task, webhookIDs []string) {
	for {
		t, id, ok := b.Next()
		if !ok {
			return tasks, webhookIDs
		}
		tasks, webhookIDs = append(tasks, t), append(webhookIDs, id)
	}
}

// Generator yields batches. It is safe for concurrent use; concurrent
// callers share one stream, so only a single caller sees a reproducible
// sequence.
type Generator struct {
	mu       sync.Mutex
	src      rand.Source
	rng      *rand.Rand
	min, max int
}

// ErrBounds is returned by New when the batch size bounds make no sense.
var ErrBounds = errors.New("generate: batch size bounds must satisfy 1 <= min <= max")

// MaxBatchSize bounds the size of one batch, so that a typing slip cannot
// make a batch that would take days to send.
const MaxBatchSize = 1_000_000

// New returns a generator of batches of min to max tasks, both inclusive,
// seeded with seed.
func New(seed int64, min, max int) (*Generator, error) {
	if min < 1 || max < min || max > MaxBatchSize {
		return nil, fmt.Errorf("%w (got %d and %d, max %d)", ErrBounds, min, max, MaxBatchSize)
	}
	src := rand.NewSource(seed)
	return &Generator{src: src, rng: rand.New(src), min: min, max: max}, nil
}

// Next returns the next batch, of a size drawn uniformly between the
// generator's bounds; its tasks are made as they are asked for.
func (g *Generator) Next() Batch {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.min + g.rng.Intn(g.max-g.min+1)
	return g.batch(n)
}

// NextOfSize returns the next batch with exactly n tasks; n is clamped to
// 1..MaxBatchSize. It advances the same stream as Next.
func (g *Generator) NextOfSize(n int) Batch {
	n = max(1, min(n, MaxBatchSize))
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.batch(n)
}

// fakerMu serialises use of faker's package-level random source, which the
// generators point at their own source while they draw names.
var fakerMu sync.Mutex

func (g *Generator) batch(n int) Batch {
	src := rand.NewSource(g.rng.Int63())
	return Batch{ID: g.uuid(), Size: n, src: src, rng: rand.New(src), seen: make(map[string]struct{})}
}

// uniqueName draws "First Last" names until one is new to the batch. Faker
// has millions of pairs, so a clash is rare; after a few in a row (a batch
// near the size of the name space) a number makes the name unique.
func uniqueName(seen map[string]struct{}) string {
	var name string
	for range 16 {
		name = faker.FirstName() + " " + faker.LastName()
		if _, dup := seen[name]; !dup {
			seen[name] = struct{}{}
			return name
		}
	}
	base := name
	for k := 2; ; k++ {
		name = base + " " + strconv.Itoa(k)
		if _, dup := seen[name]; !dup {
			seen[name] = struct{}{}
			return name
		}
	}
}

// uuid returns a version 4 UUID drawn from the generator's source.
func (g *Generator) uuid() string {
	var b [16]byte
	g.rng.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0xf])
	}
	return string(out)
}

// webhookID returns a Standard Webhooks style id ("msg_" and 24 base62
// characters) drawn from rng.
func webhookID(rng *rand.Rand) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, 28)
	out = append(out, "msg_"...)
	for range 24 {
		out = append(out, alphabet[rng.Intn(len(alphabet))])
	}
	return string(out)
}
