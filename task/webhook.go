package task

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Standard Webhooks header names (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret in its text form.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock, either way.
const DefaultTolerance = 5 * time.Minute

// Errors of webhook verification. Each is a reason to answer 401.
var (
	ErrNoSignature     = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp    = errors.New("webhook: webhook-timestamp is not a Unix time in seconds")
	ErrStale           = errors.New("webhook: timestamp outside the tolerance")
	ErrSignature       = errors.New("webhook: no signature matches")
	ErrMalformedSecret = errors.New("webhook: secret must be whsec_ followed by base64")
	ErrSecretLength    = errors.New("webhook: secret must be 24 to 64 bytes (32 to 88 characters of base64)")
)

// Bounds of a secret's length in bytes, as the Standard Webhooks reference
// libraries take them.
const (
	MinSecretLen = 24
	MaxSecretLen = 64
)

// Secret is a signing key.
type Secret []byte

// ParseSecret decodes a secret given as "whsec_<base64>". A secret without
// the prefix is taken as base64 too, as other Standard Webhooks libraries do.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	if s == "" {
		return nil, ErrMalformedSecret
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrMalformedSecret
	}
	if len(b) < MinSecretLen || len(b) > MaxSecretLen {
		return nil, ErrSecretLength
	}
	return Secret(b), nil
}

// ErrBlankSecret is returned by ParseSecrets for a setting that holds
// nothing but spaces: taken as no secret, it would turn signing off.
var ErrBlankSecret = errors.New("webhook: secret is set but blank")

// ParseSecrets decodes a space-separated list of secrets, as given to
// --webhook-secret. Several secrets let a receiver accept both the old and
// the new one while senders rotate. An empty list is no secret; one of
// spaces only is ErrBlankSecret.
func ParseSecrets(list string) ([]Secret, error) {
	if list != "" && strings.TrimSpace(list) == "" {
		return nil, ErrBlankSecret
	}
	var out []Secret
	for _, f := range strings.Fields(list) {
		s, err := ParseSecret(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// String returns the secret in its "whsec_" form.
func (s Secret) String() string { return SecretPrefix + base64.StdEncoding.EncodeToString(s) }

// Sign returns the webhook-signature header value for one delivery:
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.body".
func (s Secret) Sign(id string, ts time.Time, body []byte) string {
	var sum [sha256.Size]byte
	s.mac(sum[:0], id, ts.Unix(), body)
	return "v1," + base64.StdEncoding.EncodeToString(sum[:])
}

func (s Secret) mac(dst []byte, id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, s)
	var buf [96]byte
	b := append(buf[:0], id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, unix, 10)
	b = append(b, '.')
	m.Write(b)
	m.Write(body)
	return m.Sum(dst)
}

// Verifier checks Standard Webhooks signatures against one or more secrets.
type Verifier struct {
	// Secrets are tried in turn; a signature made with any of them passes.
	Secrets []Secret
	// Tolerance bounds the distance between a webhook's timestamp and now;
	// default DefaultTolerance.
	Tolerance time.Duration

	once sync.Once
	macs []sync.Pool // one pool of HMAC states per secret
}

// Verify checks one delivery: id and timestamp are the header values,
// signatures the webhook-signature header (several "v1,<base64>" separated
// by spaces), body the raw request body. It compares in constant time.
func (v *Verifier) Verify(id, timestamp, signatures string, body []byte, now time.Time) error {
	if id == "" || timestamp == "" || signatures == "" {
		return ErrNoSignature
	}
	unix, ok := canonicalSeconds(timestamp)
	if !ok {
		return ErrBadTimestamp
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	// Compared as bounds on unix, which cannot overflow: now is a real
	// clock's, far from the ends of int64.
	n, t := now.Unix(), int64(tol/time.Second)
	if unix < n-t || unix > n+t {
		return ErrStale
	}
	v.once.Do(func() {
		v.macs = make([]sync.Pool, len(v.Secrets))
		for i, s := range v.Secrets {
			v.macs[i].New = func() any { return hmac.New(sha256.New, s) }
		}
	})
	var sum [sha256.Size]byte
	var want [44]byte // base64 of sum
	var prefix [64]byte
	for i := range v.Secrets {
		m := v.macs[i].Get().(hash.Hash)
		m.Reset()
		// The signed content has the header's timestamp as sent, which is
		// canonical: the same bytes as it formats.
		p := append(prefix[:0], id...)
		p = append(p, '.')
		p = append(p, timestamp...)
		p = append(p, '.')
		m.Write(p)
		m.Write(body)
		m.Sum(sum[:0])
		v.macs[i].Put(m)
		base64.StdEncoding.Encode(want[:], sum[:])
		for sig := range strings.FieldsSeq(signatures) {
			if enc, ok := strings.CutPrefix(sig, "v1,"); ok && constantTimeEqual(want[:], enc) {
				return nil
			}
		}
	}
	return ErrSignature
}

// canonicalSeconds parses a timestamp in canonical decimal: digits only,
// no sign, no leading zero (but "0"), at most 18 digits so that it fits an
// int64 with room. Anything else is not a timestamp a conforming sender
// makes, and its signature would be over other bytes than it looks.
func canonicalSeconds(s string) (int64, bool) {
	if s == "" || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// constantTimeEqual compares in time that depends on the lengths only.
func constantTimeEqual(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var diff byte
	for i := range a {
		diff |= a[i] ^ b[i]
	}
	return diff == 0
}
