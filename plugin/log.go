package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/containerd/nri/pkg/api"
)

// logOutput is where the plugin logs, and at which level. The runtime's
// configuration can change both after the start: containerd discards the
// output of a plugin that it launches, so its configuration names a file.
type logOutput struct {
	logger *slog.Logger
	level  slog.LevelVar

	mu   sync.Mutex
	out  io.Writer
	file *os.File // the log file, if out is one
	path string
}

func newLogOutput(stderr io.Writer, o options) (*logOutput, error) {
	l := &logOutput{out: stderr}
	if err := l.configure(o.logLevel, o.logFile); err != nil {
		return nil, err
	}
	var h slog.Handler
	switch o.logFormat {
	case "text", "":
		h = slog.NewTextHandler(l, &slog.HandlerOptions{Level: &l.level})
	case "json":
		h = slog.NewJSONHandler(l, &slog.HandlerOptions{Level: &l.level})
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	l.logger = slog.New(h).With("plugin", "cgpol-nri")
	return l, nil
}

// configure sets the level and switches to another log file; an empty
// level or file leaves that setting alone.
func (l *logOutput) configure(level, file string) error {
	if level != "" {
		var v slog.Level
		if err := v.UnmarshalText([]byte(level)); err != nil {
			return fmt.Errorf("log level %q: want debug, info, warn or error", level)
		}
		l.level.Set(v)
	}
	if file == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if file == l.path {
		return nil
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	if l.file != nil {
		l.file.Close()
	}
	l.out, l.file, l.path = f, f, file
	return nil
}

// Write writes one log record; slog writes each record with one call.
func (l *logOutput) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.Write(b)
}

func (l *logOutput) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
	}
}

// withContainer adds the names that identify a container to log lines.
func withContainer(log *slog.Logger, pod *api.PodSandbox, ctr *api.Container) *slog.Logger {
	return log.With("namespace", pod.GetNamespace(), "pod", pod.GetName(),
		"container", ctr.GetName(), "container_id", ctr.GetId())
}

// nriLogger sends the NRI stub's messages to the plugin's log.
type nriLogger struct{ log *slog.Logger }

func (n nriLogger) Debugf(ctx context.Context, format string, args ...any) {
	n.log.DebugContext(ctx, fmt.Sprintf(format, args...))
}

func (n nriLogger) Infof(ctx context.Context, format string, args ...any) {
	n.log.InfoContext(ctx, fmt.Sprintf(format, args...))
}

func (n nriLogger) Warnf(ctx context.Context, format string, args ...any) {
	n.log.WarnContext(ctx, fmt.Sprintf(format, args...))
}

func (n nriLogger) Errorf(ctx context.Context, format string, args ...any) {
	n.log.ErrorContext(ctx, fmt.Sprintf(format, args...))
}
