package pagetest

import (
	"os"
	"testing"

	"github.com/hookpipe/hookpipe/devenv/testenv"
)

// TestMain removes what the run built for itself: the wasm (unless it came
// from $HOOKPIPE_TEST_WEB_DIR) and the relay binary.
func TestMain(m *testing.M) {
	code := m.Run()
	if webDir != "" && os.Getenv("HOOKPIPE_TEST_WEB_DIR") == "" {
		os.RemoveAll(webDir)
	}
	testenv.RemoveBinaries()
	os.Exit(code)
}
