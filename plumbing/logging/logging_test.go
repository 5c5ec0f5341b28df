package logging_test

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/plumbing/envflag"
	"github.com/hookpipe/hookpipe/plumbing/logging"
)

func TestFormatAndLevel(t *testing.T) {
	c := logging.DefaultConfig()
	s := envflag.New("svc", "", env{"HOOKPIPE_LOG_FORMAT": "json"}.get, io.Discard)
	c.Bind(s)
	if err := s.Parse([]string{"--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := c.New(&out)
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line["msg"] != "shown" || strings.Contains(out.String(), "hidden") {
		t.Fatalf("got %q, want one JSON line at warn", out.String())
	}
	for _, bad := range []logging.Config{{Format: "xml", Level: "info"}, {Format: "text", Level: "loud"}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
