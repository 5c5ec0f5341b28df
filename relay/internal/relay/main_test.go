package relay_test

import (
	"os"
	"testing"

	"github.com/hookpipe/hookpipe/devenv/testenv"
)

// TestMain removes the binaries the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}
