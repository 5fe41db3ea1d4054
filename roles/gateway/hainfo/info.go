package hainfo

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Info is the part of "show info" that the header line shows.
type Info struct {
	// Name is the product name, "HAProxy".
	Name string `json:"name"`
	// Version is HAProxy's version string, e.g. "3.2.26-1".
	Version string `json:"version"`
	// PID is the process id of the worker that answered.
	PID *int64 `json:"pid"`
	// Uptime is HAProxy's own rendering, e.g. "0d 0h01m02s".
	Uptime string `json:"uptime"`
	// UptimeSeconds is the worker's uptime in seconds.
	UptimeSeconds *int64 `json:"uptime_seconds"`
	// CurrentConnections is CurrConns: connections open right now.
	CurrentConnections *int64 `json:"current_connections"`
	// Processes is Nbproc, null when HAProxy does not report it. Since 2.5
	// HAProxy runs a single worker process and scales with threads.
	Processes *int64 `json:"processes"`
	// Threads is Nbthread: worker threads in the process.
	Threads *int64 `json:"threads"`
}

// ErrNotInfo is wrapped by ParseInfo when the text is not a "show info"
// reply.
var ErrNotInfo = errors.New(`not a "show info" reply`)

// ParseInfo reads a "show info" reply ("Key: value" lines).
func ParseInfo(text string) (Info, error) {
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if fields["Name"] == "" && fields["Version"] == "" {
		return Info{}, fmt.Errorf("%w: no Name or Version line; reply starts %q", ErrNotInfo, firstLine(text))
	}
	num := func(k string) *int64 {
		n, err := strconv.ParseInt(fields[k], 10, 64)
		if err != nil {
			return nil
		}
		return &n
	}
	return Info{
		Name:               fields["Name"],
		Version:            fields["Version"],
		PID:                num("Pid"),
		Uptime:             fields["Uptime"],
		UptimeSeconds:      num("Uptime_sec"),
		CurrentConnections: num("CurrConns"),
		Processes:          num("Nbproc"),
		Threads:            num("Nbthread"),
	}, nil
}

func firstLine(s string) string {
	s = strings.TrimLeft(s, "\r\n")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, "\r")
}
