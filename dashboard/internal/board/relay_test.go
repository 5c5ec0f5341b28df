package board

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/hookpipe/hookpipe/task"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRelayBase(t *testing.T) {
	tests := []struct {
		configured, page string
		want, ws         string
		err              bool
	}{
		{"http://127.0.0.1:5002", "http://localhost:8080/", "http://127.0.0.1:5002", "ws://127.0.0.1:5002/ws?since=7", false},
		{"https://relay.example/base/", "http://x/", "https://relay.example/base", "wss://relay.example/base/ws?since=7", false},
		{"", "http://dash.local:8080/", "http://dash.local:5002", "ws://dash.local:5002/ws?since=7", false},
		{"", "https://dash.local/", "https://dash.local:5002", "wss://dash.local:5002/ws?since=7", false},
		{"", "http://[::1]:8080/", "http://[::1]:5002", "ws://[::1]:5002/ws?since=7", false},
		{"ftp://relay", "http://x/", "", "", true},
		{"127.0.0.1:5002", "http://x/", "", "", true},
		{"", "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.configured+"|"+tt.page, func(t *testing.T) {
			page, _ := url.Parse(tt.page)
			got, err := RelayBase(tt.configured, page)
			if tt.err {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("base = %s, want %s", got, tt.want)
			}
			if ws := SocketURL(got, 7, ""); ws != tt.ws {
				t.Errorf("socket = %s, want %s", ws, tt.ws)
			}
		})
	}
	base, _ := RelayBase("http://r:1", nil)
	if got, want := SocketURL(base, 0, ""), "ws://r:1/ws"; got != want {
		t.Errorf("socket without resume = %s, want %s", got, want)
	}
	if got, want := BatchesURL(base, 20), "http://r:1/batches?limit=20"; got != want {
		t.Errorf("batches = %s, want %s", got, want)
	}
	if got, want := BatchURL(base, "a/b c"), "http://r:1/batches/a%2Fb%20c"; got != want {
		t.Errorf("batch = %s, want %s", got, want)
	}
}

func TestBatchProgress(t *testing.T) {
	tests := []struct {
		name string
		b    task.BatchSummary
		want Progress
	}{
		{"unknown size", task.BatchSummary{Counts: task.Counts{1, 2, 0, 0}}, Progress{Done: 3}},
		{"half", task.BatchSummary{Counts: task.Counts{1, 2, 1, 1}, Size: 10}, Progress{Done: 5, Size: 10, Percent: 50}},
		{"done", task.BatchSummary{Counts: task.Counts{4}, Size: 4}, Progress{Done: 4, Size: 4, Percent: 100}},
		{"over", task.BatchSummary{Counts: task.Counts{5}, Size: 4}, Progress{Done: 5, Size: 4, Percent: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BatchProgress(tt.b); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRelayBasesAndToken(t *testing.T) {
	page, _ := url.Parse("http://dash.local:8080/")
	got, err := RelayBases("http://r1:5002, http://r2:5002 ", page)
	if err != nil || len(got) != 2 || got[1].Host != "r2:5002" {
		t.Fatalf("RelayBases = %v, %v", got, err)
	}
	if got, err := RelayBases("", page); err != nil || len(got) != 1 || got[0].Host != "dash.local:5002" {
		t.Fatalf("RelayBases of nothing = %v, %v", got, err)
	}
	if _, err := RelayBases("http://ok:1 ws://bad", page); err == nil {
		t.Fatal("a bad relay URL in the list was accepted")
	}
	if ws := SocketURL(got[0], 9, "v1.1.x"); ws != "ws://r1:5002/ws?since=9&token=v1.1.x" {
		t.Fatalf("SocketURL = %s", ws)
	}
}
