package task

import (
	"net"
	"strconv"
	"time"
)

// Default ports of the components. 5000, 5001 and the path /consumetasks
// are those of the tutorial hookpipe grew from, so that its producer works
// against the receiver unchanged.
const (
	ProducerPort  = 5000
	ReceiverPort  = 5001
	RelayPort     = 5002
	DashboardPort = 8080
	// ReceiverPath is where webhooks are posted.
	ReceiverPath = "/consumetasks"
	// LoopbackHost is the interface every component listens on unless it
	// is told otherwise.
	LoopbackHost = "127.0.0.1"
)

// LoopbackAddr returns the loopback listen address of port, such as
// "127.0.0.1:5001".
func LoopbackAddr(port int) string { return net.JoinHostPort(LoopbackHost, strconv.Itoa(port)) }

// StreamSettings are the limits of the TASKS stream, as plain values: the
// services turn them into the JetStream configuration, and check a stream
// that exists already against them.
type StreamSettings struct {
	// MaxAge drops events older than this; default 24h.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; default 1 GiB.
	MaxBytes int64
	// Duplicates is the window in which the stream drops a repeated message
	// id; default 10m, wider than the producer's retry schedule. The
	// receiver's dedupe relies on it: a stream with a shorter window is
	// refused.
	Duplicates time.Duration
	// Replicas is the number of copies on a NATS cluster; default 1 (3 on a
	// cluster).
	Replicas int
}

// DefaultStreamSettings returns the defaults documented on StreamSettings.
func DefaultStreamSettings() StreamSettings {
	return StreamSettings{MaxAge: 24 * time.Hour, MaxBytes: 1 << 30, Duplicates: 10 * time.Minute, Replicas: 1}
}

// WithDefaults returns s with every zero field set to its default.
func (s StreamSettings) WithDefaults() StreamSettings {
	d := DefaultStreamSettings()
	if s.MaxAge <= 0 {
		s.MaxAge = d.MaxAge
	}
	if s.MaxBytes <= 0 {
		s.MaxBytes = d.MaxBytes
	}
	if s.Duplicates <= 0 {
		s.Duplicates = d.Duplicates
	}
	if s.Replicas <= 0 {
		s.Replicas = d.Replicas
	}
	return s
}

// DefaultReceiverURL is where webhooks go unless told otherwise:
// http://127.0.0.1:5001/consumetasks.
func DefaultReceiverURL() string { return "http://" + LoopbackAddr(ReceiverPort) + ReceiverPath }
