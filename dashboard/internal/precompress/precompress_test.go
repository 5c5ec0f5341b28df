package precompress

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.wasm")
	data := bytes.Repeat([]byte("\x00asm hookpipe dashboard "), 4096)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sizes, err := WriteFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range Encodings {
		t.Run(e.Name, func(t *testing.T) {
			c, err := os.ReadFile(path + e.Suffix)
			if err != nil {
				t.Fatal(err)
			}
			if len(c) != sizes[e.Name] || len(c) >= len(data) {
				t.Errorf("%s is %d bytes (reported %d), want less than %d", e.Suffix, len(c), sizes[e.Name], len(data))
			}
			back, err := Decompress(e.Name, c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, data) {
				t.Errorf("round trip through %s changed the data", e.Name)
			}
		})
	}
	if _, err := os.Stat(path + ".br.tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestErrors(t *testing.T) {
	if _, err := WriteFiles(filepath.Join(t.TempDir(), "missing.wasm")); err == nil {
		t.Error("WriteFiles of a missing file: no error")
	}
	if _, err := Compress("zstd", nil); err == nil {
		t.Error("Compress with an unknown encoding: no error")
	}
	if _, err := Decompress("gzip", []byte("not gzip")); err == nil {
		t.Error("Decompress of garbage: no error")
	}
}
