package ui

import (
	"html"
	"strconv"
	"time"

	"github.com/hookpipe/hookpipe/dashboard/internal/board"
	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// messageList draws the message list into the #messages element, which
// go-app renders empty and leaves alone. Under load most of the list stays
// as it is from one animation frame to the next: new events go on top and
// as many old ones fall off the bottom. Re-rendering the whole list through
// go-app would rebuild and compare hundreds of rows for that, and building
// each new row node by node costs a score of calls into JavaScript. The list
// instead inserts all new rows with one call, as HTML made by rowsHTML, in
// which every value is escaped, and drops the rows that fell off with a
// few more. An update costs in proportion to the events it brings.
type messageList struct {
	ol     app.Value
	mark   board.Mark
	filter board.Filter
	buf    []byte
}

// sync brings the list in line with the state's events that pass f. A new
// filter redraws the list.
func (m *messageList) sync(s *board.State, f board.Filter) {
	doc := app.Window().Get("document")
	ol := doc.Call("getElementById", "messages")
	if !ol.Truthy() {
		return
	}
	fresh, redraw := s.Since(m.mark)
	if m.ol == nil || !m.ol.Equal(ol) || f != m.filter {
		// First draw, go-app replaced the element, or another filter.
		fresh, redraw = s.Len(), true
	}
	m.ol, m.mark, m.filter = ol, s.Mark(), f
	if redraw {
		ol.Set("textContent", "")
	}
	if fresh > 0 {
		m.buf = appendRows(m.buf[:0], s, fresh, f)
		if len(m.buf) > 0 {
			ol.Call("insertAdjacentHTML", "afterbegin", string(m.buf))
		}
	}
	// The rows that fell off the state are the oldest, at the bottom.
	keep := s.Len()
	if f.Active() {
		keep = 0
		for i := range s.Len() {
			if f.Match(s.Event(i)) {
				keep++
			}
		}
	}
	if excess := ol.Get("childElementCount").Int() - keep; excess > 0 {
		r := doc.Call("createRange")
		r.Call("setStartBefore", ol.Get("children").Index(keep))
		r.Call("setEndAfter", ol.Get("lastElementChild"))
		r.Call("deleteContents")
	}
}

// appendRows appends the HTML of those of the n newest events of s that
// pass f, newest first:
// one li per event with its arrival time, priority (coloured by class),
// owner, batch and task id. Every value from the wire goes through
// html.EscapeString, in text or in a double-quoted attribute, so that it
// shows as the characters it is and never becomes markup.
func appendRows(b []byte, s *board.State, n int, f board.Filter) []byte {
	for i := range n {
		e := s.Event(i)
		if !f.Match(e) {
			continue
		}
		p := e.Priority.String() // one of four fixed names
		b = append(b, `<li data-seq="`...)
		b = strconv.AppendUint(b, e.Seq, 10)
		b = append(b, `" data-priority="`...)
		b = append(b, p...)
		b = append(b, `"><time class="at" datetime="`...)
		b = append(b, e.Time.Format(time.RFC3339Nano)...)
		b = append(b, `">`...)
		b = append(b, e.Time.Local().Format("15:04:05.000")...)
		b = append(b, `</time><span class="prio prio-`...)
		b = append(b, p...)
		b = append(b, `">`...)
		b = append(b, p...)
		b = append(b, `</span><span class="owner">`...)
		b = append(b, html.EscapeString(e.Owner)...)
		b = append(b, `</span><span class="meta">batch `...)
		b = append(b, html.EscapeString(shortID(e.BatchID))...)
		b = append(b, ` · task `...)
		b = strconv.AppendInt(b, e.ID, 10)
		b = append(b, "</span></li>"...)
	}
	return b
}
