package pagetest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes what the run built for itself: the wasm (unless it came
// from $HOOKPIPE_TEST_WEB_DIR) and the relay binary.
func TestMain(m *testing.M) {
	code := m.Run()
	if webDir != "" && os.Getenv("HOOKPIPE_TEST_WEB_DIR") == "" {
		os.RemoveAll(webDir)
	}
	if relayBin != "" {
		os.RemoveAll(filepath.Dir(relayBin))
	}
	os.Exit(code)
}
