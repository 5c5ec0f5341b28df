package task_test

import (
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

func TestFingerprint(t *testing.T) {
	a := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: 1, Owner: "Ann", Priority: task.Low}.Encode()
	b := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: 1, Owner: "Ann", Priority: task.Major}.Encode()
	fa := task.Fingerprint(a)
	if !strings.HasPrefix(fa, "2:") || len(fa) != 2+22 {
		t.Fatalf("fingerprint %q, want 2: and 128 bits in base64", fa)
	}
	if fa == task.Fingerprint(b) || !task.FingerprintMatches(fa, a) || task.FingerprintMatches(fa, b) {
		t.Fatalf("fingerprints do not tell the tasks apart")
	}
	// A fingerprint of the first version, as seen keys once held it.
	h := fnv.New64a()
	h.Write(a)
	old := strconv.FormatUint(h.Sum64(), 36)
	if !task.FingerprintMatches(old, a) || task.FingerprintMatches(old, b) {
		t.Fatalf("version 1 fingerprint %q not recognised", old)
	}
}

func TestDecodeStored(t *testing.T) {
	data := task.Task{BatchID: "0f8fad5b-d9cb-469f-a165-70867728950e", ID: 7, Owner: "Bo", Priority: task.Critical}.Encode()
	if tk, err := task.DecodeStored(data, task.Fingerprint(data)); err != nil || tk.ID != 7 {
		t.Fatalf("DecodeStored = %+v, %v", tk, err)
	}
	for name, c := range map[string]struct {
		data []byte
		fp   string
	}{
		"no fingerprint (published around the receiver)": {data, ""},
		"fingerprint of other data":                      {data, task.Fingerprint([]byte(`{}`))},
		"not a task":                                     {[]byte(`{"x":1}`), task.Fingerprint([]byte(`{"x":1}`))},
	} {
		if _, err := task.DecodeStored(c.data, c.fp); !errors.Is(err, task.ErrNotStoredTask) {
			t.Errorf("%s: got %v, want ErrNotStoredTask", name, err)
		}
	}
}

func TestSeenRoundTrip(t *testing.T) {
	s := task.Seen{Fingerprint: "2:abc", Seq: 42}
	got, err := task.ParseSeen(s.String())
	if err != nil || got != s {
		t.Fatalf("ParseSeen(%q) = %+v, %v", s.String(), got, err)
	}
	for _, bad := range []string{"", "2:abc", "2:abc x", " 4"} {
		if _, err := task.ParseSeen(bad); err == nil {
			t.Errorf("ParseSeen(%q) accepted", bad)
		}
	}
}

func TestParseCountsAndBatch(t *testing.T) {
	c, w, ok, err := task.ParseCounts(map[string]string{"Low": "3", "Critical": "4", "watermark": "9", "other": "x"})
	if err != nil || !ok || w != 9 || c != (task.Counts{3, 0, 0, 4}) {
		t.Fatalf("ParseCounts = %v %d %v %v", c, w, ok, err)
	}
	if _, _, ok, err := task.ParseCounts(map[string]string{"Low": "3"}); ok || err != nil {
		t.Fatalf("counts without a watermark: ok %v err %v", ok, err)
	}
	for _, bad := range []map[string]string{{"Low": "x"}, {"watermark": "-1"}} {
		if _, _, _, err := task.ParseCounts(bad); err == nil {
			t.Errorf("ParseCounts(%v) accepted", bad)
		}
	}
	b, err := task.ParseBatch("id", map[string]string{"Major": "2", "size": "10", "updated": "1700000000000"})
	if err != nil || b.Counts != (task.Counts{0, 0, 2, 0}) || b.Size != 10 || !b.Updated.Equal(time.UnixMilli(1700000000000)) {
		t.Fatalf("ParseBatch = %+v, %v", b, err)
	}
	if _, err := task.ParseBatch("id", map[string]string{"size": "ten"}); err == nil {
		t.Error("ParseBatch accepted a size that is not a number")
	}
}

func TestAnswer(t *testing.T) {
	for _, a := range []task.Answer{{Status: task.StatusAccepted, Seq: 12}, {Status: task.StatusDuplicate, Seq: 3}, {Status: task.StatusDuplicate}} {
		b := a.AppendJSON(nil)
		if got := task.ParseAnswer(b); got != a {
			t.Errorf("%s parsed as %+v, want %+v", b, got, a)
		}
	}
	if got := task.ParseAnswer([]byte("OK")); got != (task.Answer{Status: task.StatusAccepted}) {
		t.Errorf("a plain OK parsed as %+v, want accepted", got)
	}
}
