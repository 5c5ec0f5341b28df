// Package precompress writes and reads the brotli and gzip copies of the
// dashboard's wasm, made once at build time so that the server never
// compresses on a request.
package precompress

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/andybalholm/brotli"
)

// Encodings the server can serve, best first, with their file suffixes.
var Encodings = []Encoding{
	{Name: "br", Suffix: ".br"},
	{Name: "gzip", Suffix: ".gz"},
}

// Encoding is one content coding and the suffix of its file.
type Encoding struct {
	Name   string
	Suffix string
}

// Compress returns data compressed with the encoding named name at the best
// ratio, which takes seconds for a wasm file: fine at build time only.
func Compress(name string, data []byte) ([]byte, error) {
	var b bytes.Buffer
	var w io.WriteCloser
	switch name {
	case "br":
		w = brotli.NewWriterLevel(&b, brotli.BestCompression)
	case "gzip":
		gw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		w = gw
	default:
		return nil, fmt.Errorf("unknown encoding %q", name)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Decompress reverses Compress.
func Decompress(name string, data []byte) ([]byte, error) {
	var r io.Reader
	switch name {
	case "br":
		r = brotli.NewReader(bytes.NewReader(data))
	case "gzip":
		gr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = gr
	default:
		return nil, fmt.Errorf("unknown encoding %q", name)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// WriteFiles writes path.br and path.gz beside path, each through a
// temporary file renamed into place, so that a server never reads half a
// file. It returns the sizes written, by encoding name.
func WriteFiles(path string) (map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("precompress: %w", err)
	}
	sizes := make(map[string]int)
	for _, e := range Encodings {
		c, err := Compress(e.Name, data)
		if err != nil {
			return nil, fmt.Errorf("precompress %s: %w", path, err)
		}
		tmp := path + e.Suffix + ".tmp"
		if err := os.WriteFile(tmp, c, 0o644); err != nil {
			return nil, fmt.Errorf("precompress: %w", err)
		}
		if err := os.Rename(tmp, path+e.Suffix); err != nil {
			return nil, fmt.Errorf("precompress: %w", err)
		}
		sizes[e.Name] = len(c)
	}
	return sizes, nil
}
