// Package testdata gives tests the shared fixtures under this folder: the
// recorded batches and the bad-input corpus, embedded so that no test has to
// find them by a relative path.
package testdata

import "embed"

// FS holds batches/*.jsonl and bad/*.
//
//go:embed batches bad
var FS embed.FS
