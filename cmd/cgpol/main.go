// Command cgpol is the admin CLI of cgpol: it installs the pinned BPF
// programs, attaches policies to cgroups and shows what is enforced.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cgpol/cgpol/pkg/enforce"
)

// A command is one verb of the CLI.
type command struct {
	name    string
	summary string // the one-line help
	usage   string // arguments, after the verb
	run     func(g *globals, args []string) error
	root    bool // needs root
}

var commands = []command{
	{"install", "load cgpol's BPF programs and maps and pin them under the bpffs root (idempotent)", "", runInstall, true},
	{"uninstall", "remove the pinned programs and maps (refuses while cgroups are attached, unless --force)", "[--force]", runUninstall, true},
	{"attach", "attach a policy to a cgroup and all its child cgroups", "(--cgroup PATH | --pid PID) (--allow-ports SPEC | --annotation KEY=VALUE ...) [--name NAME]", runAttach, true},
	{"detach", "remove cgpol's policy from a cgroup", "(--cgroup PATH | --pid PID | --id CGROUP_ID)", runDetach, true},
	{"status", "show each attached cgroup with its policy and allowed/denied counts per hook", "[-o table|json]", runStatus, true},
	{"gc", "remove the pins and map entries of cgroups that are gone, and what crashes left", "", runGC, true},
	{"events", "stream deny and audit events as they happen, one line each", "[-o text|json] [--count N]", runEvents, true},
	{"metrics", "print the counters in the Prometheus text format", "", runMetrics, true},
	{"version", "print cgpol's version and the BPF ABI it pins", "", runVersion, false},
}

// globals are the flags that come before the verb.
type globals struct {
	root   string
	stdout io.Writer
	cmd    command // the verb being run
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageErr is an error in the user's invocation rather than in the system.
type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout}
	fs := flag.NewFlagSet("cgpol", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.root, "bpffs", envOr("CGPOL_BPFFS", enforce.DefaultRoot), "bpffs `DIR` that holds cgpol's pins ($CGPOL_BPFFS)")
	fs.Usage = func() { usage(fs, stderr) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		usage(fs, stderr)
		return 2
	}
	name := fs.Arg(0)
	for _, c := range commands {
		if c.name != name {
			continue
		}
		if c.root && os.Geteuid() != 0 {
			fmt.Fprintf(stderr, "cgpol %s: must run as root (it needs CAP_BPF, CAP_SYS_ADMIN and CAP_NET_ADMIN)\n", name)
			return 1
		}
		g.cmd = c
		err := c.run(g, fs.Args()[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageErr)):
			fmt.Fprintf(stderr, "cgpol %s: %v\nusage: cgpol %s %s\n", name, err, name, c.usage)
			return 2
		}
		fmt.Fprintf(stderr, "cgpol %s: %s\n", name, oneLine(err))
		return 1
	}
	fmt.Fprintf(stderr, "cgpol: unknown command %q (run cgpol --help)\n", name)
	return 2
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "cgpol enforces per-cgroup network policy with pinned eBPF cgroup programs.\n\n")
	fmt.Fprintf(w, "usage: cgpol [--bpffs DIR] COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nglobal flags:\n")
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nRun cgpol COMMAND --help for a command's flags.\n")
}

// flags returns a flag set for the verb being run, whose --help prints the
// verb's one-line summary and usage.
func (g *globals) flags() *flag.FlagSet {
	c := g.cmd
	fs := flag.NewFlagSet("cgpol "+c.name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "cgpol %s: %s\nusage: cgpol %s %s\n", c.name, c.summary, c.name, c.usage)
		fs.PrintDefaults()
	}
	return fs
}

// open opens the install under the global --bpffs root.
func (g *globals) open() (*enforce.Objects, error) {
	return enforce.Open(g.root)
}

// parse parses a verb's flags and rejects stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func usageError(format string, args ...any) error {
	return usageErr{fmt.Sprintf(format, args...)}
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// oneLine keeps an error message on one line for the user.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
