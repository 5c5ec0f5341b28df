package task

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
)

// HeaderFingerprint is the NATS header the receiver sets on every task it
// publishes: the Fingerprint of the message's data. A stored message
// without it, or whose data does not match it, did not come through a
// receiver, and is left out of every count and frame.
const HeaderFingerprint = "Hookpipe-Fingerprint"

// fingerprintV2 starts a fingerprint of the current version: a SHA-256 of
// the task's canonical encoding, truncated to 128 bits. Version 1, an
// FNV-64a in base 36 without prefix, can be forged; it is only recognised,
// so that a retry of a task remembered under it is still a duplicate.
const fingerprintV2 = "2:"

// Fingerprint identifies a task's content: the fingerprint of its canonical
// encoding (Task.AppendJSON), so that a webhook id reused for another task
// is told from a retry of the same one.
func Fingerprint(encoded []byte) string {
	sum := sha256.Sum256(encoded)
	return fingerprintV2 + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// FingerprintMatches reports whether fp, of any version, is the fingerprint
// of encoded.
func FingerprintMatches(fp string, encoded []byte) bool {
	if strings.HasPrefix(fp, fingerprintV2) {
		return fp == Fingerprint(encoded)
	}
	h := fnv.New64a()
	h.Write(encoded)
	return fp == strconv.FormatUint(h.Sum64(), 36)
}

// ErrNotStoredTask matches the error of DecodeStored for a stream message
// that is not a task a receiver stored.
var ErrNotStoredTask = errors.New("task: stream message is not a task stored by a receiver")

// DecodeStored decodes a message of the stream: data must be a valid task
// and fingerprint (the message's HeaderFingerprint) its fingerprint. The
// fold, the relay and verification all skip what it refuses, alike.
func DecodeStored(data []byte, fingerprint string) (Task, error) {
	if fingerprint == "" || !FingerprintMatches(fingerprint, data) {
		return Task{}, ErrNotStoredTask
	}
	t, err := Decode(data)
	if err != nil {
		return Task{}, errors.Join(ErrNotStoredTask, err)
	}
	return t, nil
}

// Seen is what Redis remembers of a webhook id: the fingerprint of its task
// and the task's stream sequence.
type Seen struct {
	Fingerprint string
	Seq         uint64
}

// String encodes s as the value of a seen key.
func (s Seen) String() string { return s.Fingerprint + " " + strconv.FormatUint(s.Seq, 10) }

// ParseSeen decodes the value of a seen key.
func ParseSeen(v string) (Seen, error) {
	fp, seq, ok := strings.Cut(v, " ")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || fp == "" || err != nil {
		return Seen{}, errors.New("task: seen key holds " + strconv.Quote(v))
	}
	return Seen{Fingerprint: fp, Seq: n}, nil
}
