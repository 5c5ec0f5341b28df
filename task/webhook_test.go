package task_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/hookpipe/hookpipe/task"
)

// The Standard Webhooks specification's published example.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecVector(t *testing.T) {
	s, err := task.ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(specID, time.Unix(specTS, 0), []byte(specBody)); got != specSig {
		t.Fatalf("got %s, want %s", got, specSig)
	}
	if s.String() != specSecret {
		t.Fatalf("String() = %s, want %s", s, specSecret)
	}
}

func TestVerify(t *testing.T) {
	old, _ := task.ParseSecret(specSecret)
	cur, err := task.ParseSecret("whsec_" + "c2VjcmV0LXR3by1zZWNyZXQtdHdvLXNlY3JldC10d28=")
	if err != nil {
		t.Fatal(err)
	}
	v := task.Verifier{Secrets: []task.Secret{cur, old}}
	now := time.Unix(specTS, 0)
	body := []byte(specBody)
	ts := "1614265330"
	other := cur.Sign(specID, now, body)
	tests := []struct {
		name, id, ts, sig string
		body              []byte
		now               time.Time
		want              error
	}{
		{"spec vector", specID, ts, specSig, body, now, nil},
		{"rotated secret", specID, ts, other, body, now, nil},
		{"several signatures", specID, ts, "v1,AAAA " + specSig, body, now, nil},
		{"edge of tolerance", specID, ts, specSig, body, now.Add(5 * time.Minute), nil},
		{"tampered body", specID, ts, specSig, []byte(`{"test": 2432232315}`), now, task.ErrSignature},
		{"other id", "msg_other", ts, specSig, body, now, task.ErrSignature},
		{"no v1 prefix", specID, ts, specSig[3:], body, now, task.ErrSignature},
		{"v2 scheme", specID, ts, "v2" + specSig[2:], body, now, task.ErrSignature},
		{"garbage", specID, ts, "v1,!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", body, now, task.ErrSignature},
		{"stale", specID, ts, specSig, body, now.Add(5*time.Minute + time.Second), task.ErrStale},
		{"future", specID, ts, specSig, body, now.Add(-6 * time.Minute), task.ErrStale},
		{"bad timestamp", specID, "yesterday", specSig, body, now, task.ErrBadTimestamp},
		{"missing signature", specID, ts, "", body, now, task.ErrNoSignature},
		{"missing id", "", ts, specSig, body, now, task.ErrNoSignature},
		{"missing timestamp", specID, "", specSig, body, now, task.ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(tt.id, tt.ts, tt.sig, tt.body, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseSecrets(t *testing.T) {
	second := "whsec_" + "c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcw==" // "second-secret-of-24-bytes"
	got, err := task.ParseSecrets(" " + specSecret + "  " + second + " ")
	if err != nil || len(got) != 2 || string(got[1]) != "second-secret-of-24-bytes" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, err := task.ParseSecrets(""); err != nil || got != nil {
		t.Fatalf("no secret: %q %v", got, err)
	}
	for _, tt := range []struct {
		list string
		want error
	}{
		{"whsec_not*base64", task.ErrMalformedSecret},
		{"whsec_AA==", task.ErrSecretLength}, // 1 byte
		{"whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", task.ErrSecretLength}, // 65 bytes
		{"   ", task.ErrBlankSecret},
		{"\t", task.ErrBlankSecret},
	} {
		if _, err := task.ParseSecrets(tt.list); !errors.Is(err, tt.want) {
			t.Errorf("ParseSecrets(%q) = %v, want %v", tt.list, err, tt.want)
		}
	}
}

// Timestamps are canonical decimal as the signer formats them; anything
// else is refused before any signature is computed, and extreme values do
// not overflow into the tolerance.
func TestVerifyTimestampEdges(t *testing.T) {
	s, _ := task.ParseSecret(specSecret)
	v := task.Verifier{Secrets: []task.Secret{s}}
	now := time.Unix(specTS, 0)
	body := []byte(specBody)
	for _, ts := range []string{"+1614265330", "01614265330", " 1614265330", "1614265330.0", "-1", "1e9",
		"9223372036854775807", "99999999999999999999", "-9223372036854775808"} {
		// Even a signature made over these exact bytes does not pass.
		sig := sign(s, specID, ts, body)
		if err := v.Verify(specID, ts, sig, body, now); !errors.Is(err, task.ErrBadTimestamp) && !errors.Is(err, task.ErrStale) {
			t.Errorf("timestamp %q: %v, want ErrBadTimestamp or ErrStale", ts, err)
		}
	}
	// A conforming signature over the raw header passes.
	if err := v.Verify(specID, "1614265330", sign(s, specID, "1614265330", body), body, now); err != nil {
		t.Fatal(err)
	}
}

// sign computes a v1 signature over id.timestamp.body as given, the way a
// sender that formats its timestamp its own way would.
func sign(s task.Secret, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, s)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func BenchmarkVerify(b *testing.B) {
	s, _ := task.ParseSecret(specSecret)
	v := task.Verifier{Secrets: []task.Secret{s}}
	now := time.Unix(specTS, 0)
	body := []byte(specBody)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(specID, "1614265330", specSig, body, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"batchid":"` + batch + `","id":7,"owner":"Ada Lovelace","priority":"Critical"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := task.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
