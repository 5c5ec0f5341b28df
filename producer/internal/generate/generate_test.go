package generate_test

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hookpipe/hookpipe/producer/internal/generate"
	"github.com/hookpipe/hookpipe/task"
)

func newGen(t testing.TB, seed int64, min, max int) *generate.Generator {
	t.Helper()
	g, err := generate.New(seed, min, max)
	if err != nil {
		t.Fatalf("New(%d, %d, %d): %v", seed, min, max, err)
	}
	return g
}

func TestSameSeedSameBatches(t *testing.T) {
	a, b := newGen(t, 42, 1, 100), newGen(t, 42, 1, 100)
	for i := range 5 {
		x, y := a.Next(), b.Next()
		xt, xi := x.All()
		yt, yi := y.All()
		if x.ID != y.ID || !reflect.DeepEqual(xt, yt) || !reflect.DeepEqual(xi, yi) {
			t.Fatalf("batch %d differs for the same seed:\n%+v\n%+v", i, xt[0], yt[0])
		}
	}
	other := newGen(t, 43, 1, 100).Next()
	if other.ID == newGen(t, 42, 1, 100).Next().ID {
		t.Fatal("seeds 42 and 43 gave the same batch id")
	}
}

// TestSeedIsolatedFromOtherGenerators checks that a generator's stream does
// not depend on other generators drawing at the same time, which share
// faker's package-level source.
func TestSeedIsolatedFromOtherGenerators(t *testing.T) {
	w := newGen(t, 7, 50, 50).Next()
	want, _ := w.All()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	noise := newGen(t, 99, 1, 20)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				b := noise.Next()
				b.All()
			}
		}
	})
	gb := newGen(t, 7, 50, 50).Next()
	got, _ := gb.All()
	close(stop)
	wg.Wait()
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the same seed gave another batch while a second generator ran")
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestBatchIsValid(t *testing.T) {
	tests := []struct {
		name     string
		min, max int
	}{
		{"tutorial bounds", 1, 100},
		{"fixed size", 10, 10},
		{"single task", 1, 1},
		{"large", 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGen(t, 1, tt.min, tt.max)
			for range 3 {
				b := g.Next()
				tasks, webhookIDs := b.All()
				n := len(tasks)
				if n != b.Size {
					t.Fatalf("%d tasks made of a batch of %d", n, b.Size)
				}
				if n < tt.min || n > tt.max {
					t.Fatalf("size %d outside [%d, %d]", n, tt.min, tt.max)
				}
				if !uuidRE.MatchString(b.ID) {
					t.Fatalf("batch id %q is not a v4 UUID", b.ID)
				}
				owners := map[string]bool{}
				ids := map[string]bool{}
				for i, tk := range tasks {
					if err := tk.Validate(); err != nil {
						t.Fatalf("task %d invalid: %v", i, err)
					}
					if tk.ID != int64(i) || tk.BatchID != b.ID || tk.BatchSize != int64(n) {
						t.Fatalf("task %d: got id %d batch %s size %d", i, tk.ID, tk.BatchID, tk.BatchSize)
					}
					if owners[tk.Owner] {
						t.Fatalf("owner %q twice in one batch", tk.Owner)
					}
					owners[tk.Owner] = true
					if len(strings.Fields(tk.Owner)) < 2 {
						t.Fatalf("owner %q is not a first and last name", tk.Owner)
					}
					if ids[webhookIDs[i]] || !strings.HasPrefix(webhookIDs[i], "msg_") {
						t.Fatalf("webhook id %q repeated or malformed", webhookIDs[i])
					}
					ids[webhookIDs[i]] = true
				}
			}
		})
	}
}

func TestSizesAndPrioritiesSpread(t *testing.T) {
	g := newGen(t, 3, 1, 4)
	sizes := map[int]int{}
	var prio [task.NumPriorities]int
	for range 400 {
		b := g.Next()
		tasks, _ := b.All()
		sizes[len(tasks)]++
		for _, tk := range tasks {
			prio[tk.Priority.Index()]++
		}
	}
	for n := 1; n <= 4; n++ {
		// Uniform: 100 expected each; 50 is far outside chance.
		if sizes[n] < 50 {
			t.Errorf("size %d drawn %d times in 400, want about 100 (%v)", n, sizes[n], sizes)
		}
	}
	for i, c := range prio {
		if c == 0 {
			t.Errorf("priority %v never drawn (%v)", task.Priorities[i], prio)
		}
	}
}

func TestNextOfSize(t *testing.T) {
	g := newGen(t, 5, 1, 100)
	for _, n := range []int{1, 7, 250} {
		if b := g.NextOfSize(n); b.Size != n {
			t.Errorf("NextOfSize(%d) has size %d", n, b.Size)
		}
		b := g.NextOfSize(n)
		if tasks, _ := b.All(); len(tasks) != n {
			t.Errorf("NextOfSize(%d) made %d tasks", n, len(tasks))
		}
	}
	if got := g.NextOfSize(0).Size; got != 1 {
		t.Errorf("NextOfSize(0) has %d tasks, want 1", got)
	}
}

func TestBadBounds(t *testing.T) {
	for _, b := range [][2]int{{0, 10}, {5, 4}, {-1, -1}, {1, generate.MaxBatchSize + 1}} {
		if _, err := generate.New(1, b[0], b[1]); !errors.Is(err, generate.ErrBounds) {
			t.Errorf("New(1, %d, %d) = %v, want ErrBounds", b[0], b[1], err)
		}
	}
}

func BenchmarkNext100(b *testing.B) {
	g := newGen(b, 1, 100, 100)
	b.ReportAllocs()
	for b.Loop() {
		g.Next()
	}
}
