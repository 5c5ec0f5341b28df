package fanout

import (
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// frame is one encoded WebSocket frame, header included, shared read-only
// by every client it is sent to. A connection's writer hands these bytes
// to the socket as they are, several queued frames in one system call.
type frame struct {
	data []byte // the whole frame as it goes on the wire
	size int    // payload bytes, for the metrics
	ping bool   // a ping, not a message: not counted as a frame sent
}

// WebSocket opcodes (RFC 6455, 5.2).
const (
	opText  = 1
	opClose = 8
	opPing  = 9
	opPong  = 10
)

// maxFrameHeader is the longest header of a server frame.
const maxFrameHeader = 10

// appendFrameHeader appends the header of one unmasked, final, uncompressed
// server frame of the given opcode and payload length.
func appendFrameHeader(b []byte, opcode int, n int) []byte {
	b = append(b, 0x80|byte(opcode))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// controlFrame returns a control frame of opcode with payload, which RFC
// 6455 caps at 125 bytes.
func controlFrame(opcode int, payload []byte) []byte {
	payload = payload[:min(len(payload), 125)]
	return append(appendFrameHeader(make([]byte, 0, 2+len(payload)), opcode, len(payload)), payload...)
}

// closeFrame returns a close frame with code and reason.
func closeFrame(code int, reason string) []byte {
	payload := append([]byte{byte(code >> 8), byte(code)}, reason[:min(len(reason), 123)]...)
	return controlFrame(opClose, payload)
}

// pingFrame is an empty ping, as a server sends it (unmasked).
var pingFrame = &frame{data: controlFrame(opPing, nil), ping: true}

// appendEvent appends the JSON of one task.Event to b: the same document
// encoding/json makes of it, with the task's fields inline, built without
// reflection because every event is encoded once on its way into the ring.
func appendEvent(b []byte, ev *task.Event) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = append(b, `,"time":"`...)
	b = ev.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"', ',')
	// Task.AppendJSON starts with '{'; continue the event's object instead.
	start := len(b)
	b = ev.Task.AppendJSON(b)
	copy(b[start:], b[start+1:])
	b = b[:len(b)-1]
	if ev.WebhookID == "" {
		return b
	}
	// The id goes inside the object. Valid webhook ids are printable ASCII,
	// which Go quotes as JSON does.
	b = append(b[:len(b)-1], `,"webhookid":`...)
	b = strconv.AppendQuote(b, ev.WebhookID)
	return append(b, '}')
}

// meta is what a frame says besides its state: when it was made and what
// holds the pipeline back.
type meta struct {
	sent   time.Time
	health task.Health
	rates  *task.Rates
}

// appendFrame appends a task.Frame document whose events are given as
// already encoded JSON objects.
func appendFrame(b []byte, typ task.FrameType, seq uint64, counts *task.Counts, events [][]byte, m *meta) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"counts":`...)
	b = counts.AppendJSON(b)
	b = append(b, `,"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	b = append(b, ']')
	if !m.sent.IsZero() {
		b = append(b, `,"sent":"`...)
		b = m.sent.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if hl := &m.health; *hl != (task.Health{}) {
		b = append(b, `,"health":{`...)
		n := len(b)
		field := func(name string) {
			if len(b) > n {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, '"', ':')
		}
		if hl.IntervalMS != 0 {
			field("interval_ms")
			b = strconv.AppendInt(b, hl.IntervalMS, 10)
		}
		if hl.Capped != 0 {
			field("capped")
			b = strconv.AppendInt(b, int64(hl.Capped), 10)
		}
		if hl.StreamLag != 0 {
			field("stream_lag")
			b = strconv.AppendUint(b, hl.StreamLag, 10)
		}
		if hl.FoldLag != 0 {
			field("fold_lag")
			b = strconv.AppendUint(b, hl.FoldLag, 10)
		}
		b = append(b, '}')
	}
	if r := m.rates; r != nil {
		b = append(b, `,"rates":{"start":`...)
		b = strconv.AppendInt(b, r.Start, 10)
		b = append(b, `,"counts":[`...)
		for i, c := range r.Counts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			for j, n := range c {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, n, 10)
			}
			b = append(b, ']')
		}
		b = append(b, ']')
		if r.KnownFrom != 0 {
			b = append(b, `,"known_from":`...)
			b = strconv.AppendInt(b, r.KnownFrom, 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// encoder makes the frames of the hub: the JSON once, then a text frame
// around it, whose bytes every writer shares. It keeps the last snapshot
// and resume it made, so that a crowd that reconnects at once costs one
// encoding. Only the hub goroutine uses it.
type encoder struct {
	buf    []byte
	evbuf  [][]byte
	built  func() // counts a frame built, for the metrics
	snap   cachedFrame
	resume cachedFrame
}

// cachedFrame is a frame with what it was made of: the sequence it resumes
// from (0 for a snapshot), its own sequence and the counts' version.
type cachedFrame struct {
	since, seq, version uint64
	f                   *frame
}

// frame encodes one frame of typ at seq with counts, events and m.
func (e *encoder) frame(typ task.FrameType, seq uint64, counts *task.Counts, events [][]byte, m *meta) *frame {
	e.buf = appendFrame(e.buf[:0], typ, seq, counts, events, m)
	data := make([]byte, 0, maxFrameHeader+len(e.buf))
	data = appendFrameHeader(data, opText, len(e.buf))
	data = append(data, e.buf...)
	if e.built != nil {
		e.built()
	}
	return &frame{data: data, size: len(e.buf)}
}

// cached returns the frame in slot when it was made for the same since,
// sequence and counts' version, and otherwise makes it.
func (e *encoder) cached(slot *cachedFrame, since, seq, version uint64, make func() *frame) *frame {
	if slot.f != nil && slot.since == since && slot.seq == seq && slot.version == version {
		return slot.f
	}
	*slot = cachedFrame{since: since, seq: seq, version: version, f: make()}
	return slot.f
}

// forget drops the cached frames, which belong to a stream made anew.
func (e *encoder) forget() { e.snap, e.resume = cachedFrame{}, cachedFrame{} }
