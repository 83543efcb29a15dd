package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cgpol/cgpol/pkg/metrics"
)

// serveMetrics serves cgpol's counters in the Prometheus text format on
// addr (/metrics), until ctx ends. Metrics are an aid, not enforcement: if
// the address cannot be bound, the plugin logs it and goes on without them.
func (p *plugin) serveMetrics(ctx context.Context, addr string, log *slog.Logger) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("cannot serve metrics; enforcement goes on without them", "addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", p.metricsHandler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("serving metrics", "addr", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server stopped", "err", err)
	}
}

// metricsHandler writes the metrics of the install that the node
// configuration names; before anything is installed there is nothing to count.
func (p *plugin) metricsHandler(w http.ResponseWriter, r *http.Request) {
	cfg, err := p.nodeConfig()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	objs, ok, err := p.objects(cfg, false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if !ok {
		fmt.Fprintf(w, "# cgpol is not installed yet: nothing is attached.\n# TYPE cgpol_attached_cgroups gauge\ncgpol_attached_cgroups 0\n")
		return
	}
	if err := metrics.Write(w, objs); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
