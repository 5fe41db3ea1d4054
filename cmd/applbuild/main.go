// Command applbuild bakes immutable appliance images and writes the per-site
// cloud-init seed ISOs that configure them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// command is one subcommand: its flags, its help text and what it runs.
type command struct {
	name    string
	summary string
	usage   string // arguments after the command name
	long    string
	flags   func(fs *pflag.FlagSet)
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what every command gets: its output streams and logger.
type env struct {
	stdout, stderr io.Writer
	log            *logrus.Logger
}

// usageError marks a mistake on the command line: exit status 2 and a hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func commands() []*command {
	return []*command{imageCommand(), verifyCommand(), fetchCommand(), seedCommand(), keygenCommand(), versionCommand(), completionCommand()}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, log: logrus.New()}
	e.log.SetOutput(stderr)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if c := find(args[1]); c != nil {
				printCommandHelp(stdout, c, newFlagSet(c))
				return 0
			}
		}
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" {
		args = []string{"version"}
	}
	c := find(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "applbuild: unknown command %q; commands are: %s\nRun 'applbuild --help' for usage.\n", args[0], strings.Join(names(), ", "))
		return 2
	}
	fs := newFlagSet(c)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandHelp(stdout, c, fs)
			return 0
		}
		fmt.Fprintf(stderr, "applbuild %s: %v\nRun 'applbuild %s --help' for usage.\n", c.name, err, c.name)
		return 2
	}
	logLevel, _ := fs.GetString("log-level")
	logFormat, _ := fs.GetString("log-format")
	lvl, err := logrus.ParseLevel(logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "applbuild: --log-level %q is not a level; use debug, info, warn or error\n", logLevel)
		return 2
	}
	e.log.SetLevel(lvl)
	switch logFormat {
	case "text":
		e.log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: false, FullTimestamp: true})
	case "json":
		e.log.SetFormatter(&logrus.JSONFormatter{})
	default:
		fmt.Fprintf(stderr, "applbuild: --log-format %q is not a format; use text or json\n", logFormat)
		return 2
	}
	if err := c.run(ctx, e, fs.Args()); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "applbuild %s: %s\nRun 'applbuild %s --help' for usage.\n", c.name, ue.msg, c.name)
			return 2
		}
		fmt.Fprintf(stderr, "applbuild %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

func newFlagSet(c *command) *pflag.FlagSet {
	fs := pflag.NewFlagSet("applbuild "+c.name, pflag.ContinueOnError)
	fs.SortFlags = false
	if c.flags != nil {
		c.flags(fs)
	}
	fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.String("log-format", "text", "log format: text or json")
	return fs
}

func find(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func names() []string {
	var out []string
	for _, c := range commands() {
		out = append(out, c.name)
	}
	sort.Strings(out)
	return out
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, `applbuild bakes immutable appliance images (gateway, node) and the per-site
cloud-init seed ISOs that configure them.

Usage:
  applbuild <command> [flags] [arguments]

Commands:`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, `
Flags for every command:
  --log-level string    log level: debug, info, warn or error (default "info")
  --log-format string   log format: text or json (default "text")

Run 'applbuild <command> --help' for a command's flags and examples.`)
}

func printCommandHelp(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  applbuild %s %s\n", c.summary, c.name, c.usage)
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.long))
	}
	if fs.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
}
