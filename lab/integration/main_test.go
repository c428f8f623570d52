package integration

import (
	"os"
	"testing"

	"floatip/internal/fiptest"
)

// TestMain removes the binaries built for the lab tests (the package's only
// TestMain: add to it rather than writing another).
func TestMain(m *testing.M) {
	code := m.Run()
	fiptest.RemoveBuilds()
	os.Exit(code)
}
