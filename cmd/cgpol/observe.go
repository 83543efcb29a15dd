package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cgpol/cgpol/pkg/events"
	"github.com/cgpol/cgpol/pkg/metrics"
)

func runEvents(g *globals, args []string) error {
	fs := g.flags()
	format := fs.String("o", "text", "output `format`: text or json (one object per line)")
	count := fs.Int("count", 0, "stop after `N` events (0: until interrupted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageError("unknown format %q: want text or json", *format)
	}
	objs, err := g.open()
	if err != nil {
		return err
	}
	defer objs.Close()
	rd, err := events.NewReader(objs)
	if err != nil {
		return err
	}
	defer rd.Close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-stop
		rd.Close()
	}()
	enc := json.NewEncoder(g.stdout)
	for n := 0; *count == 0 || n < *count; n++ {
		e, err := rd.Read()
		if errors.Is(err, events.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if *format == "json" {
			if err := enc.Encode(e); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(g.stdout, "%s %s\n", e.Time.Format("15:04:05.000"), e)
		}
	}
	return nil
}

func runMetrics(g *globals, args []string) error {
	if err := parse(g.flags(), args); err != nil {
		return err
	}
	objs, err := g.open()
	if err != nil {
		return err
	}
	defer objs.Close()
	return metrics.Write(g.stdout, objs)
}
