package hainfo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// DefaultWatchInterval is the refresh interval of a bare --watch.
const DefaultWatchInterval = 2 * time.Second

// minWatchInterval keeps --watch from hammering the stats socket.
const minWatchInterval = 100 * time.Millisecond

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usageText = `Usage: hainfo [flags]

Shows HAProxy's frontends, backends and servers from its stats socket: status,
current sessions, rate, totals, errors and the last health check.

  RATE   req/s for HTTP frontends (req_rate); sess/s (rate) where HAProxy
         has no request rate, which is every backend and server.
  TOTAL  req: HTTP requests (req_tot, or the sum of the hrsp_* response
         counters); sess: sessions (stot), used in TCP mode.

Flags:
`

// options are the validated command-line flags.
type options struct {
	socket   Address
	json     bool
	watch    time.Duration
	count    int
	backends []string
	timeout  time.Duration
}

// Main runs hainfo with args (the arguments after the program or subcommand
// name), stops a --watch on SIGINT or SIGTERM, and returns the exit status:
// 0 on success, 1 when the stats could not be read, 2 for bad flags.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, stdout, stderr)
}

// Run is Main with the caller's context: cancelling it ends a --watch.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "hainfo: %v\n", err)
		return exitUsage
	}
	client := &Client{Address: opt.socket, Timeout: opt.timeout}
	term := isTerminal(stdout)
	color := term && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"

	if opt.watch == 0 {
		rep, err := snapshot(ctx, client, opt.backends)
		if err != nil {
			fmt.Fprintf(stderr, "hainfo: %v\n", err)
			return exitError
		}
		if err := writeFrame(stdout, rep, opt.json, false, RenderOptions{Color: color}); err != nil {
			fmt.Fprintf(stderr, "hainfo: writing output: %v\n", err)
			return exitError
		}
		return exitOK
	}

	status := exitOK
	for frame := 1; ; frame++ {
		rep, err := snapshot(ctx, client, opt.backends)
		if ctx.Err() != nil {
			return status
		}
		var buf bytes.Buffer
		switch {
		case opt.json:
			// One compact document per line, so a consumer can read frames
			// with a line reader.
		case term:
			buf.WriteString("\x1b[H\x1b[2J")
		case frame > 1:
			buf.WriteString("\n")
		}
		if err != nil {
			// A reload or a restart makes the socket vanish for a moment;
			// say so and keep watching.
			status = exitError
			fmt.Fprintf(stderr, "hainfo: %v\n", err)
			if !opt.json {
				fmt.Fprintf(&buf, "%s  error: %v\n", time.Now().UTC().Format("2006-01-02 15:04:05 UTC"), err)
			}
		} else {
			status = exitOK
			if err := writeFrame(&buf, rep, opt.json, true, RenderOptions{Color: color}); err != nil {
				fmt.Fprintf(stderr, "hainfo: rendering: %v\n", err)
				return exitError
			}
		}
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			fmt.Fprintf(stderr, "hainfo: writing output: %v\n", err)
			return exitError
		}
		if opt.count > 0 && frame >= opt.count {
			return status
		}
		timer := time.NewTimer(opt.watch)
		select {
		case <-ctx.Done():
			timer.Stop()
			return status
		case <-timer.C:
		}
	}
}

func writeFrame(w io.Writer, rep *Report, asJSON, compact bool, ro RenderOptions) error {
	if !asJSON {
		return WriteTable(w, rep, ro)
	}
	if compact {
		return json.NewEncoder(w).Encode(rep)
	}
	return WriteJSON(w, rep)
}

// snapshot reads "show info" and "show stat" and builds the report.
func snapshot(ctx context.Context, c *Client, backends []string) (*Report, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	stat, err := c.Stat(ctx)
	if err != nil {
		return nil, err
	}
	return BuildReport(c.Address.String(), time.Now(), info, stat, backends)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := pflag.NewFlagSet("hainfo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	socket := fs.StringP("socket", "s", DefaultSocket, "HAProxy stats socket: a path, unix@PATH, abns@NAME, ipv4@HOST:PORT or ipv6@[HOST]:PORT")
	asJSON := fs.Bool("json", false, "print the report as JSON (one document per refresh with --watch)")
	watch := fs.DurationP("watch", "w", 0, "redraw every interval until interrupted; --watch alone uses 2s")
	fs.Lookup("watch").NoOptDefVal = DefaultWatchInterval.String()
	count := fs.Int("count", 0, "with --watch, stop after this many refreshes (0: until interrupted)")
	backends := fs.StringArrayP("backend", "b", nil, "show only this backend, and no frontends (repeat for more)")
	timeout := fs.Duration("timeout", DefaultTimeout, "give up on a stats socket that does not answer within this time")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fmt.Fprint(stderr, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		if _, err := time.ParseDuration(fs.Arg(0)); err == nil && fs.Changed("watch") {
			// --watch has an optional value, so pflag cannot take it from
			// the next argument.
			return options{}, fmt.Errorf("unexpected argument %q: write the interval as --watch=%s", fs.Arg(0), fs.Arg(0))
		}
		return options{}, fmt.Errorf("unexpected argument %q: hainfo takes only flags (see --help)", fs.Arg(0))
	}
	addr, err := ParseAddress(*socket)
	if err != nil {
		return options{}, fmt.Errorf("--socket: %w", err)
	}
	opt := options{socket: addr, json: *asJSON, watch: *watch, count: *count, timeout: *timeout}
	if fs.Changed("watch") && opt.watch < minWatchInterval {
		return options{}, fmt.Errorf("--watch=%s is too short; give %s or more (e.g. --watch=1s)", *watch, minWatchInterval)
	}
	if opt.count < 0 {
		return options{}, fmt.Errorf("--count=%d is negative; give 0 (until interrupted) or a positive number of refreshes", opt.count)
	}
	if opt.count > 0 && opt.watch == 0 {
		return options{}, fmt.Errorf("--count needs --watch; use --watch --count=%d", opt.count)
	}
	if opt.timeout <= 0 {
		return options{}, fmt.Errorf("--timeout=%s must be positive, e.g. --timeout=5s", opt.timeout)
	}
	for _, b := range *backends {
		if strings.TrimSpace(b) == "" {
			return options{}, errors.New("--backend needs a backend name")
		}
		opt.backends = append(opt.backends, b)
	}
	return opt, nil
}
