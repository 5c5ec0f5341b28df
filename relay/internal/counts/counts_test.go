package counts

import (
	"context"
	"strings"
	"testing"

	"github.com/hookpipe/hookpipe/devenv/testenv"
	"github.com/hookpipe/hookpipe/task"
	"github.com/redis/go-redis/v9"
)

func TestRead(t *testing.T) {
	url, prefix := testenv.Redis(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	keys := task.Keys{Prefix: prefix}

	tests := []struct {
		name    string
		fields  []any
		want    task.Counts
		wantErr string
	}{
		{"absent hash", nil, task.Counts{}, ""},
		{"all four", []any{"Low", 1, "Moderate", 2, "Major", 3, "Critical", 4}, task.Counts{1, 2, 3, 4}, ""},
		{"other fields ignored", []any{"Low", 5, "size", 9, "low", 7}, task.Counts{5, 0, 0, 0}, ""},
		{"not a number", []any{"Major", "many"}, task.Counts{}, "not an integer"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := keys.Counts() + ":" + string(rune('a'+i))
			if len(tt.fields) > 0 {
				if err := rdb.HSet(ctx, key, tt.fields...).Err(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Read(ctx, rdb, key)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
