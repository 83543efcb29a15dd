// Command cgpol-nri is cgpol's NRI plugin for containerd (and CRI-O): it
// gives each CRI container the policy of its pod's cgpol annotations, or the
// node's default policy, before the container's entrypoint runs.
//
// containerd can launch it (pre-installed): a link at
// /opt/nri/plugins/10-cgpol, with its configuration in
// /etc/nri/conf.d/10-cgpol.conf. Or it runs on its own (external) and
// connects to the NRI socket given by --socket, reconnecting whenever the
// runtime restarts.
//
//	cgpol-nri [--socket /var/run/nri/nri.sock] [--config /etc/cgpol/config.yaml] [--log-level info]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/cgpol/cgpol/pkg/nodeconfig"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Defaults for an external plugin. containerd names a plugin that it
// launches after its file in /opt/nri/plugins.
const (
	defaultName = "cgpol"
	defaultIdx  = "10"
)

// options are the plugin's settings, from flags and then from the
// configuration that the runtime passes to a plugin it launches.
type options struct {
	socket      string // NRI socket of an external plugin
	name, idx   string // registration name and index
	nodeConfig  string // cgpol's node configuration
	logLevel    string
	logFile     string // empty: stderr
	logFormat   string // text or json
	metricsAddr string // where to serve Prometheus metrics; empty: nowhere
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	logs, err := newLogOutput(stderr, opts)
	if err != nil {
		fmt.Fprintf(stderr, "cgpol-nri: %v\n", err)
		return 2
	}
	defer logs.Close()
	log := logs.logger

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	p := newPlugin(opts, logs)
	p.ctx = ctx
	p.startMetrics(opts.metricsAddr)
	launched := os.Getenv(api.PluginSocketEnvVar) != ""
	if err := p.newStub(launched); err != nil {
		log.Error("cannot create the NRI stub", "err", err)
		return 1
	}
	defer p.close()

	if launched {
		// The runtime owns the connection. When it closes it (it stops,
		// or it dropped the plugin after a timeout), the plugin exits:
		// containerd launches it again when containerd starts again.
		log.Info("starting", "version", version, "launched_by_runtime", true)
		err := p.stub.Run(ctx)
		if ctx.Err() != nil {
			return 0
		}
		log.Error("connection to the runtime lost; exiting", "err", err)
		return 1
	}
	log.Info("starting", "version", version, "launched_by_runtime", false, "socket", opts.socket)
	return runExternal(ctx, p, log)
}

// newStub sets up the plugin's NRI stub. A plugin that the runtime
// launched takes its name, index and connection from the runtime's
// environment; an external one from its options.
func (p *plugin) newStub(launched bool) error {
	opts := []stub.Option{stub.WithLogger(nriLogger{p.log.With("component", "nri")})}
	if !launched {
		opts = append(opts, stub.WithSocketPath(p.opts.socket),
			stub.WithPluginName(p.opts.name), stub.WithPluginIdx(p.opts.idx))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		return err
	}
	p.stub = s
	return nil
}

// runExternal keeps an external plugin connected: it reconnects, with a
// growing delay, whenever the runtime restarts or is not up yet.
func runExternal(ctx context.Context, p *plugin, log *slog.Logger) int {
	const minDelay, maxDelay = 250 * time.Millisecond, 10 * time.Second
	delay := minDelay
	for {
		began := time.Now()
		err := p.stub.Run(ctx)
		if ctx.Err() != nil {
			log.Info("stopped")
			return 0
		}
		if time.Since(began) > maxDelay {
			delay = minDelay // it was connected for a while: retry soon
		}
		log.Warn("not connected to the runtime; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(delay):
		}
		delay = min(2*delay, maxDelay)
	}
}

func parseFlags(args []string, stdout, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("cgpol-nri", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.socket, "socket", api.DefaultSocketPath, "the runtime's NRI `socket`, for a plugin that the runtime does not launch")
	fs.StringVar(&o.name, "name", defaultName, "the plugin's `name` in NRI (required_plugins refers to it)")
	fs.StringVar(&o.idx, "idx", defaultIdx, "the plugin's two-digit `index` in NRI, which orders plugins")
	fs.StringVar(&o.nodeConfig, "config", nodeconfig.DefaultPath, "cgpol's node configuration `file` (default policy, exemptions, bpffs)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFile, "log-file", "", "append logs to `file` instead of stderr")
	fs.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on `address` (e.g. :9101, path /metrics)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cgpol-nri [flags]\n\n"+
			"cgpol's NRI plugin: enforces each CRI container's cgpol policy from its pod's annotations.\n"+
			"containerd launches it from /opt/nri/plugins (configuration in /etc/nri/conf.d), or it\n"+
			"connects to --socket itself.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "cgpol-nri: unexpected arguments %q\n", fs.Args())
		return o, errors.New("unexpected arguments")
	}
	if *showVersion {
		fmt.Fprintf(stdout, "cgpol-nri %s\n", version)
		return o, flag.ErrHelp
	}
	if err := api.CheckPluginName(o.name); err != nil {
		fmt.Fprintf(stderr, "cgpol-nri: --name: %v\n", err)
		return o, err
	}
	if err := api.CheckPluginIndex(o.idx); err != nil {
		fmt.Fprintf(stderr, "cgpol-nri: --idx: %v\n", err)
		return o, err
	}
	return o, nil
}
