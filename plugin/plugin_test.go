package main

import (
	"io"
	"strings"
	"testing"
)

func TestSurviveTurnsAPanicIntoAnError(t *testing.T) {
	logs, err := newLogOutput(io.Discard, options{})
	if err != nil {
		t.Fatal(err)
	}
	p := newPlugin(options{}, logs)
	handler := func() (err error) {
		defer p.survive("StartContainer", &err)
		var m map[string]int
		m["x"] = 1 // panics
		return nil
	}
	if err := handler(); err == nil || !strings.Contains(err.Error(), "cgpol: internal error in StartContainer: assignment to entry in nil map") {
		t.Errorf("got %v", err)
	}
}
