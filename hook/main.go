// Command cgpol-hook is cgpol's OCI hook. Runtimes (runc, crun, Podman,
// CRI-O) run it with the container's OCI state on stdin:
//
//	cgpol-hook [--config FILE] [--bpffs DIR] createRuntime|prestart|poststop
//
// At createRuntime (or prestart, on older runtimes) it attaches the policy
// of the container's cgpol.io/ annotations, or the node's default policy, to
// the container's cgroup v2, before the container's first instruction. At
// poststop it removes what it attached. It exits non-zero with one line on
// stderr when it cannot enforce the policy asked for, and the runtime then
// refuses to start the container.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cgpol/cgpol/pkg/enforce"
	"github.com/cgpol/cgpol/pkg/nodeconfig"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usageLine = "usage: cgpol-hook [--config FILE] [--bpffs DIR] [--annotated-only] createRuntime|prestart|poststop < OCI-STATE"

// options are the hook's flags.
type options struct {
	config        string
	bpffs         string
	annotatedOnly bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, stage, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cgpol-hook: %v\n%s\n", err, usageLine)
		return 2
	}
	if stage == "version" {
		fmt.Fprintf(stdout, "cgpol-hook %s\n", version)
		return 0
	}
	s, err := readState(stdin)
	if err != nil {
		return fail(stderr, stage, nil, err)
	}
	if err := runStage(stage, s, opts); err != nil {
		return fail(stderr, stage, s, err)
	}
	return 0
}

// parseArgs parses the flags, before or after the stage.
func parseArgs(args []string, stderr io.Writer) (options, string, error) {
	var o options
	fs := flag.NewFlagSet("cgpol-hook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", nodeconfig.DefaultPath, "the node configuration `FILE` (a missing file leaves unannotated containers unrestricted)")
	fs.StringVar(&o.bpffs, "bpffs", "", "bpffs `DIR` of cgpol's pins (default: the config's bpffs, else "+enforce.DefaultRoot+")")
	fs.BoolVar(&o.annotatedOnly, "annotated-only", false, "the runtime runs this hook only for containers with cgpol annotations: refuse a config with a defaultPolicy, which such a setup cannot enforce")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "cgpol-hook: the OCI hook of cgpol; reads the OCI state on stdin\n%s\n", usageLine)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, "", err
	}
	if fs.NArg() == 0 {
		return o, "", errors.New("no stage given")
	}
	stage := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return o, "", err
	}
	if fs.NArg() > 0 {
		return o, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch stage {
	case "createRuntime", "prestart", "poststop", "version":
		return o, stage, nil
	}
	return o, "", fmt.Errorf("unknown stage %q: want createRuntime, prestart or poststop", stage)
}

// runStage loads the node configuration and runs one stage.
func runStage(stage string, s *state, o options) error {
	cfg, err := nodeconfig.Load(o.config)
	if err != nil {
		return err
	}
	if o.annotatedOnly && cfg.DefaultPolicy != nil && stage != "poststop" {
		return fmt.Errorf("%s sets a defaultPolicy, but this hook is configured to run only for containers with cgpol annotations (--annotated-only), so the default would not reach unannotated containers: install the hooks.d files that run it for every container", o.config)
	}
	root := o.bpffs
	if root == "" {
		root = cfg.BPFFS
	}
	if root == "" {
		root = enforce.DefaultRoot
	}
	if stage == "poststop" {
		return poststop(s, root)
	}
	return create(s, cfg, root)
}

// fail prints one line for the user, naming the container, and returns the
// exit status that makes the runtime refuse the container.
func fail(stderr io.Writer, stage string, s *state, err error) int {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if s != nil {
		name := s.container().String()
		fmt.Fprintf(stderr, "cgpol-hook %s: container %s: %s\n", stage, name, msg)
	} else {
		fmt.Fprintf(stderr, "cgpol-hook %s: %s\n", stage, msg)
	}
	return 1
}
