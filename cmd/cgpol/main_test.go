package main

import (
	"os"
	"testing"

	"github.com/cgpol/cgpol/test/testenv"
)

// TestMain removes what the tests built once for all of them.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
