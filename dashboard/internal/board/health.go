package board

import (
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// DegradedLag is how many events the relay may be behind the stream, or
// Redis's fold behind the relay, before the page says the pipeline is
// degraded: a few milliseconds of events are normal.
const DegradedLag = 1000

// NoticeHold is how long the page goes on saying the pipeline is degraded
// after the last frame that said so, so that the notice does not flicker.
const NoticeHold = 5 * time.Second

// Problems says in words what h holds the view back by; none when nothing.
func Problems(h *task.Health) []string {
	if h == nil {
		return nil
	}
	var out []string
	if h.IntervalMS > 0 {
		out = append(out, "updates every "+strconv.FormatInt(h.IntervalMS, 10)+" ms (the relay's clients are slow)")
	}
	if h.Capped > 0 {
		out = append(out, "the relay leaves events out of updates (counts stay exact)")
	}
	if h.StreamLag >= DegradedLag {
		out = append(out, "the relay is "+strconv.FormatUint(h.StreamLag, 10)+" events behind the stream")
	}
	if h.FoldLag >= DegradedLag {
		out = append(out, "Redis's counts are "+strconv.FormatUint(h.FoldLag, 10)+" events behind the stream")
	}
	return out
}

// Freshness is how long the newest event of the last update took from the
// stream to the relay's socket, and when the page received it: the event's
// accept-to-screen time is Delay plus the time from Received to drawing,
// without comparing the browser's clock with the servers'.
type Freshness struct {
	Delay    time.Duration
	Received time.Time
}

// AcceptToScreen returns the newest event's accept-to-screen time when it
// is drawn at drawn.
func (f Freshness) AcceptToScreen(drawn time.Time) time.Duration {
	return f.Delay + max(drawn.Sub(f.Received), 0)
}

// observe takes the freshness and health of frame f, received at now.
func (s *State) observe(f task.Frame, now time.Time) {
	if p := Problems(f.Health); len(p) > 0 {
		s.problems, s.problemAt = p, now
	}
	// A snapshot may be a copy made earlier; only updates say how fresh.
	if f.Type != task.FrameUpdate || len(f.Events) == 0 || f.Sent.IsZero() {
		return
	}
	s.fresh = Freshness{Delay: max(f.Sent.Sub(f.Events[len(f.Events)-1].Time), 0), Received: now}
	s.freshN++
}

// Fresh returns the freshness of the newest event an update brought, and
// how many updates brought one so far (0: none yet).
func (s *State) Fresh() (Freshness, uint64) { return s.fresh, s.freshN }

// Notice says what holds the pipeline back, as the frames of the last
// NoticeHold before now said; empty when nothing does.
func (s *State) Notice(now time.Time) string {
	if len(s.problems) == 0 || now.Sub(s.problemAt) > NoticeHold {
		return ""
	}
	return "Degraded: " + strings.Join(s.problems, " · ")
}
