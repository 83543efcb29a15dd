package main

import (
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// fileConfig is the configuration that the runtime passes to a plugin it
// launches: /etc/nri/conf.d/10-cgpol.conf (or cgpol.conf), in YAML. Each
// field given overrides the flag of the same meaning.
type fileConfig struct {
	// NodeConfig is cgpol's node configuration (--config).
	NodeConfig string `json:"nodeConfig,omitempty"`
	// LogLevel is debug, info, warn or error (--log-level).
	LogLevel string `json:"logLevel,omitempty"`
	// LogFile is where to append logs (--log-file). containerd discards
	// what a plugin it launches writes to stderr.
	LogFile string `json:"logFile,omitempty"`
	// MetricsAddr is where to serve Prometheus metrics (--metrics-addr),
	// e.g. ":9101". A plugin that containerd launches gets no flags.
	MetricsAddr string `json:"metricsAddr,omitempty"`
}

// parseFileConfig parses the plugin's configuration; unknown fields are errors.
func parseFileConfig(data string) (fileConfig, error) {
	var c fileConfig
	if strings.TrimSpace(data) == "" {
		return c, nil
	}
	if err := yaml.UnmarshalStrict([]byte(data), &c); err != nil {
		return c, errors.New("cgpol-nri configuration: " + strings.Join(strings.Fields(err.Error()), " "))
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("cgpol-nri configuration: logLevel %q: want debug, info, warn or error", c.LogLevel)
	}
	return c, nil
}

// apply returns o with the settings that c gives.
func (c fileConfig) apply(o options) options {
	if c.NodeConfig != "" {
		o.nodeConfig = c.NodeConfig
	}
	if c.LogLevel != "" {
		o.logLevel = c.LogLevel
	}
	if c.LogFile != "" {
		o.logFile = c.LogFile
	}
	if c.MetricsAddr != "" {
		o.metricsAddr = c.MetricsAddr
	}
	return o
}
