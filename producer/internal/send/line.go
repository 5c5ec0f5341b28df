package send

import (
	"strconv"
	"strings"
)

// Line formats one result as the tutorial printed it, "i out of n --
// status -- task", with the retries and the error when there are any. i
// counts from 1.
func Line(i, n int, r Result) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(i))
	b.WriteString(" out of ")
	b.WriteString(strconv.Itoa(n))
	b.WriteString(" -- ")
	b.WriteString(StatusText(r))
	b.WriteString(" -- ")
	b.Write(r.Delivery.Task.Encode())
	if k := r.Retries(); k == 1 {
		b.WriteString(" -- 1 retry")
	} else if k > 1 {
		b.WriteString(" -- " + strconv.Itoa(k) + " retries")
	}
	if r.Err != nil && r.Outcome != Accepted && r.Outcome != Duplicate {
		b.WriteString(" -- ")
		b.WriteString(r.Err.Error())
	}
	return b.String()
}

// StatusText is the status column of a line: the HTTP status, marked when
// the task was a duplicate or failed, or the outcome alone when there was
// no answer.
func StatusText(r Result) string {
	switch {
	case r.Status == 0:
		return r.Outcome.String()
	case r.Outcome == Accepted:
		return strconv.Itoa(r.Status)
	default:
		return strconv.Itoa(r.Status) + " " + r.Outcome.String()
	}
}
