package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFileConfig(t *testing.T) {
	c, err := parseFileConfig("nodeConfig: /etc/cgpol/node.yaml\nlogLevel: debug\nlogFile: /var/log/cgpol-nri.log\nmetricsAddr: :9101\n")
	if err != nil {
		t.Fatal(err)
	}
	o := c.apply(options{nodeConfig: "/etc/cgpol/config.yaml", logLevel: "info", socket: "/s"})
	want := options{nodeConfig: "/etc/cgpol/node.yaml", logLevel: "debug", logFile: "/var/log/cgpol-nri.log", socket: "/s", metricsAddr: ":9101"}
	if o != want {
		t.Errorf("applied: got %+v, want %+v", o, want)
	}
	if c, err := parseFileConfig("  \n"); err != nil || c != (fileConfig{}) {
		t.Errorf("empty configuration: got %+v, %v", c, err)
	}
	for _, bad := range []struct{ data, want string }{
		{"nodeConfigFile: /x\n", `unknown field "nodeConfigFile"`},
		{"logLevel: loud\n", `logLevel "loud"`},
		{"[", "cgpol-nri configuration: "},
	} {
		if _, err := parseFileConfig(bad.data); err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: got %v, want one line with %q", bad.data, err, bad.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--socket", "/run/x.sock", "--config", "/c.yaml", "--idx", "05"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.socket != "/run/x.sock" || o.nodeConfig != "/c.yaml" || o.idx != "05" || o.name != defaultName {
		t.Errorf("got %+v", o)
	}
	for _, args := range [][]string{{"--idx", "5"}, {"--name", "a b"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func FuzzParseFileConfig(f *testing.F) {
	for _, seed := range []string{
		"nodeConfig: /etc/cgpol/config.yaml\nlogLevel: info\nlogFile: /var/log/cgpol-nri.log\n",
		"logLevel: debug", "", "[", "nodeConfig: [1, 2]", "x: 1", "logLevel: \"\\n\"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		c, err := parseFileConfig(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			return
		}
		switch c.LogLevel {
		case "", "debug", "info", "warn", "error":
		default:
			t.Errorf("accepted log level %q", c.LogLevel)
		}
	})
}
