package testenv

import (
	"os"
	"testing"
)

// TestMain removes what the tests built once for all of them.
func TestMain(m *testing.M) { os.Exit(Main(m)) }
