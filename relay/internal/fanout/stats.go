package fanout

import (
	"sync/atomic"
	"time"
)

// stats are the hub's counters, read by Stats from any goroutine.
type stats struct {
	clients       atomic.Int64
	built         atomic.Int64
	framesSent    atomic.Int64
	bytesSent     atomic.Int64
	dropped       atomic.Int64
	slow          atomic.Int64
	refusedFull   atomic.Int64
	refusedOrigin atomic.Int64
	snapshots     atomic.Int64
	resumes       atomic.Int64
	badEvents     atomic.Int64
	seq           atomic.Uint64
	lag           atomic.Uint64
	intervalNanos atomic.Int64
	fanouts       atomic.Int64
	fanoutNanos   atomic.Int64
}

// Stats is a point-in-time reading of the hub's counters.
type Stats struct {
	Clients       int64         // clients being served
	Conns         int64         // open connections, including ones being closed
	FramesBuilt   int64         // distinct frames encoded
	FramesSent    int64         // frames written to clients
	BytesSent     int64         // payload bytes written to clients
	Dropped       int64         // frames not delivered because a client's queue was full
	SlowCuts      int64         // clients cut off for being too slow
	RefusedFull   int64         // connections refused at the connection limit
	RefusedOrigin int64         // connections refused for their origin
	Snapshots     int64         // snapshot frames served on join
	Resumes       int64         // exact resumes served on join
	BadEvents     int64         // stream messages that were not valid tasks
	Seq           uint64        // newest stream sequence taken in
	Lag           uint64        // messages in the stream not taken in yet
	Interval      time.Duration // current time between frames
	Fanouts       int64         // rounds that brought every client up to date
	FanoutTime    time.Duration // time those rounds took writing (pauses aside), in all
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	s := &h.stats
	iv := time.Duration(s.intervalNanos.Load())
	if iv == 0 {
		iv = h.cfg.Interval
	}
	return Stats{
		Clients:       s.clients.Load(),
		Conns:         h.conns.Load(),
		FramesBuilt:   s.built.Load(),
		FramesSent:    s.framesSent.Load(),
		BytesSent:     s.bytesSent.Load(),
		Dropped:       s.dropped.Load(),
		SlowCuts:      s.slow.Load(),
		RefusedFull:   s.refusedFull.Load(),
		RefusedOrigin: s.refusedOrigin.Load(),
		Snapshots:     s.snapshots.Load(),
		Resumes:       s.resumes.Load(),
		BadEvents:     s.badEvents.Load(),
		Seq:           s.seq.Load(),
		Lag:           s.lag.Load(),
		Interval:      iv,
		Fanouts:       s.fanouts.Load(),
		FanoutTime:    time.Duration(s.fanoutNanos.Load()),
	}
}
