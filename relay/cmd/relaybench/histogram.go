package main

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// histogram merges the clients' latency counts. Buckets grow by 5% from
// 10 µs, so quantiles are exact to 5% and each client's counts stay small.
type histogram struct {
	on      atomic.Bool
	buckets []int64
	n       int64
}

const (
	bucketBase   = 10 * time.Microsecond
	bucketGrowth = 1.05
	numBuckets   = 360 // up to about 10 minutes
)

// bucketTops holds the upper bound of every bucket, for bucketOf.
var bucketTops = func() []time.Duration {
	tops := make([]time.Duration, numBuckets)
	for i := range tops {
		tops[i] = bucketTop(i)
	}
	return tops
}()

// bucketOf returns the bucket of latency d: the first whose upper bound is
// at least d. A binary search rather than a logarithm, since the load
// client does this for every event it times.
func bucketOf(d time.Duration) int {
	i, _ := slices.BinarySearch(bucketTops, d)
	return min(i, numBuckets-1)
}

// bucketNear returns bucketOf(d), walking from bucket from (-1 for
// none): the events of one frame have latencies close to each other, so
// this takes a step or two where the search takes nine.
func bucketNear(d time.Duration, from int) int {
	if from < 0 {
		return bucketOf(d)
	}
	i := from
	for i < numBuckets-1 && d > bucketTops[i] {
		i++
	}
	for i > 0 && d <= bucketTops[i-1] {
		i--
	}
	return i
}

// bucketTop returns the upper bound of bucket i.
func bucketTop(i int) time.Duration {
	return time.Duration(float64(bucketBase) * math.Pow(bucketGrowth, float64(i)))
}

func newHistogram() *histogram { return &histogram{} }

func (h *histogram) merge(clients []*client) {
	h.buckets = make([]int64, numBuckets)
	h.n = 0
	for _, c := range clients {
		c.mu.Lock()
		for i, v := range c.hist {
			h.buckets[i] += int64(v)
			h.n += int64(v)
		}
		c.mu.Unlock()
	}
}

func (h *histogram) count() int64 { return h.n }

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := min(int64(q*float64(h.n)), h.n-1)
	var seen int64
	i := 0
	for i = range h.buckets {
		seen += h.buckets[i]
		if seen > rank {
			break
		}
	}
	return bucketTop(i).Round(10 * time.Microsecond)
}
