// Package record reads and writes recorded batches: JSON Lines files, one
// task per line, in the order and at the pace they were sent.
//
// A line is a task.Recorded: a task as the receiver takes it, plus the
// webhook id replayed with --same-ids and offset_ms, the time in
// milliseconds from the file's first send to this one. A file may hold
// several batches one after the other.
package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// Line is one recorded send.
type Line = task.Recorded

// Write writes lines as JSON Lines.
func Write(w io.Writer, lines []Line) error {
	bw := bufio.NewWriter(w)
	buf := make([]byte, 0, 256)
	for _, l := range lines {
		buf = append(l.AppendJSON(buf[:0]), '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("record: write: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("record: write: %w", err)
	}
	return nil
}

// ErrFormat matches every error about the content of a recording.
var ErrFormat = errors.New("record: bad recording")

// MaxLineSize bounds one line of a recording.
const MaxLineSize = 64 << 10

// Read parses a recording. name labels errors, which give the line number.
// Every task must be one the receiver accepts, webhookid must be present
// and offsets must not go backwards.
func Read(r io.Reader, name string) ([]Line, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLineSize)
	var out []Line
	var prev time.Duration
	for n := 1; sc.Scan(); n++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		l, err := parseLine(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %w", ErrFormat, name, n, err)
		}
		if l.Offset < prev {
			return nil, fmt.Errorf("%w: %s:%d: offset_ms goes backwards", ErrFormat, name, n)
		}
		prev = l.Offset
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("record: read %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: no tasks", ErrFormat, name)
	}
	return out, nil
}

func parseLine(raw []byte) (Line, error) {
	t, err := task.Decode(raw)
	if err != nil {
		return Line{}, err
	}
	var extra struct {
		WebhookID *string `json:"webhookid"`
		OffsetMS  *int64  `json:"offset_ms"`
	}
	if err := json.Unmarshal(raw, &extra); err != nil {
		return Line{}, fmt.Errorf("webhookid or offset_ms: %w", err)
	}
	if extra.WebhookID == nil || *extra.WebhookID == "" {
		return Line{}, errors.New("webhookid is required")
	}
	if extra.OffsetMS == nil || *extra.OffsetMS < 0 {
		return Line{}, errors.New("offset_ms must be a number of milliseconds from 0")
	}
	return Line{Task: t, WebhookID: *extra.WebhookID, Offset: time.Duration(*extra.OffsetMS) * time.Millisecond}, nil
}

// Speed is how fast a replay goes relative to the recording: 1 as
// recorded, 10 ten times faster, Max (0) as fast as possible.
type Speed float64

// Max replays without pauses.
const Max Speed = 0

// ParseSpeed reads a --speed value: "recorded" or "1" (as recorded), a
// factor such as "10" or "10x" (ten times faster, "0.5" half as fast), or
// "max" (as fast as possible).
func ParseSpeed(s string) (Speed, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "recorded":
		return 1, nil
	case "max", "0":
		return Max, nil
	default:
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "x"), 64)
		if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("speed %q: want recorded, max, or a factor above 0 such as 10", s)
		}
		return Speed(f), nil
	}
}

// String returns the speed as ParseSpeed reads it.
func (s Speed) String() string {
	switch s {
	case Max:
		return "max"
	case 1:
		return "recorded"
	}
	return strconv.FormatFloat(float64(s), 'g', -1, 64) + "x"
}

// Gap returns the pause between lines i-1 and i at this speed.
func (s Speed) Gap(lines []Line, i int) time.Duration {
	if s == Max || i == 0 {
		return 0
	}
	return time.Duration(float64(lines[i].Offset-lines[i-1].Offset) / float64(s))
}
