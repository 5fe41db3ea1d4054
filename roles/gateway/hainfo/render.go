package hainfo

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// missing is shown for a field HAProxy did not report.
const missing = "-"

// ANSI colours for statuses; only used when stdout is a terminal.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
)

// RenderOptions control the table's look.
type RenderOptions struct {
	// Color adds ANSI colours to statuses and headings.
	Color bool
}

// WriteJSON writes the report as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Server table columns, in display order.
var serverColumns = []string{"SERVER", "STATUS", "CUR", "RATE", "TOTAL", "ECON", "ERESP", "CHKFAIL", "LAST CHECK"}

// Frontend table columns, in display order.
var frontendColumns = []string{"FRONTEND", "STATUS", "MODE", "CUR", "RATE", "TOTAL", "EREQ", "DREQ"}

// totalRowName labels a backend's totals line in the server table; it is
// HAProxy's own svname for that line and cannot clash with a server name
// because HAProxy reserves it.
const totalRowName = "BACKEND"

// WriteTable writes the report as the human-readable table: a header line,
// the frontends, then each backend's servers followed by the backend's
// totals. Column widths follow the content.
func WriteTable(w io.Writer, r *Report, opt RenderOptions) error {
	var out strings.Builder
	out.WriteString(headerLine(r) + "\n")

	if len(r.Frontends) > 0 {
		t := newTable(frontendColumns)
		for _, f := range r.Frontends {
			t.add(false, f.Name, f.Status, orMissing(f.Mode), num(f.CurrentSessions), rate(f.Rate), total(f.Total), num(f.RequestErrors), num(f.DeniedRequests))
		}
		out.WriteString("\n")
		t.write(&out, opt, 1)
	}

	if len(r.Backends) > 0 {
		t := newTable(serverColumns)
		for _, b := range r.Backends {
			t.heading(backendHeading(b))
			for _, s := range b.Servers {
				name := s.Name
				if s.Backup {
					name += " (backup)"
				}
				t.add(false, name, orMissing(s.Status), num(s.CurrentSessions), rate(s.Rate), total(s.Total), num(s.ConnectionErrors), num(s.ResponseErrors), num(s.CheckFailures), lastCheck(s.LastCheck))
			}
			t.add(true, totalRowName, orMissing(b.Status), num(b.CurrentSessions), rate(b.Rate), total(b.Total), num(b.ConnectionErrors), num(b.ResponseErrors), num(b.CheckFailures), "")
		}
		out.WriteString("\n")
		t.write(&out, opt, 1)
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func headerLine(r *Report) string {
	in := r.Info
	name := in.Name
	if name == "" {
		name = "HAProxy"
	}
	parts := []string{strings.TrimSpace(name + " " + orMissing(in.Version))}
	if in.PID != nil {
		parts = append(parts, "pid "+num(in.PID))
	}
	switch {
	case in.Uptime != "":
		parts = append(parts, "up "+in.Uptime)
	case in.UptimeSeconds != nil:
		parts = append(parts, "up "+num(in.UptimeSeconds)+"s")
	}
	parts = append(parts, num(in.CurrentConnections)+" conns")
	if in.Processes != nil {
		parts = append(parts, plural(*in.Processes, "process", "processes"))
	}
	if in.Threads != nil {
		parts = append(parts, plural(*in.Threads, "thread", "threads"))
	}
	parts = append(parts, "socket "+r.Socket, r.Time.Format("2006-01-02 15:04:05 UTC"))
	return strings.Join(parts, "  ")
}

func backendHeading(b Backend) string {
	parts := []string{"backend " + b.Name}
	if b.Mode != "" {
		parts = append(parts, b.Mode)
	}
	if b.Algorithm != "" {
		parts = append(parts, b.Algorithm)
	}
	up := missing
	if b.ServersInService != nil {
		up = num(b.ServersInService)
	}
	parts = append(parts, fmt.Sprintf("%s/%d servers in service", up, len(b.Servers)))
	return strings.Join(parts, "  ")
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

func num(v *int64) string {
	if v == nil {
		return missing
	}
	return strconv.FormatInt(*v, 10)
}

func orMissing(s string) string {
	if s == "" {
		return missing
	}
	return s
}

func rate(m Metric) string {
	if m.Value == nil {
		return missing
	}
	return num(m.Value) + " " + m.Unit
}

// total abbreviates the unit so the column stays narrow.
func total(m Metric) string {
	if m.Value == nil {
		return missing
	}
	unit := "req"
	if m.Unit == UnitSessions {
		unit = "sess"
	}
	return num(m.Value) + " " + unit
}

func lastCheck(c *Check) string {
	if c == nil {
		return missing
	}
	return c.Summary
}

// table lays out left-aligned columns whose widths follow the widest cell.
// Headings span the full line and do not count towards widths.
type table struct {
	columns []string
	rows    []tableRow
}

type tableRow struct {
	heading string
	total   bool
	cells   []string
}

func newTable(columns []string) *table { return &table{columns: columns} }

func (t *table) add(total bool, cells ...string) {
	t.rows = append(t.rows, tableRow{total: total, cells: cells})
}

func (t *table) heading(s string) { t.rows = append(t.rows, tableRow{heading: s}) }

func (t *table) write(out *strings.Builder, opt RenderOptions, gap int) {
	widths := make([]int, len(t.columns))
	for i, c := range t.columns {
		widths[i] = utf8.RuneCountInString(c)
	}
	for _, r := range t.rows {
		for i, c := range r.cells {
			if n := utf8.RuneCountInString(c); n > widths[i] {
				widths[i] = n
			}
		}
	}
	sep := strings.Repeat(" ", gap+1)
	line := func(cells []string, style func(i int, padded string) string) {
		var b strings.Builder
		for i, c := range cells {
			last := i == len(cells)-1
			padded := c
			if !last {
				padded += strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			}
			if style != nil {
				padded = style(i, padded)
			}
			b.WriteString(padded)
			if !last {
				b.WriteString(sep)
			}
		}
		out.WriteString(strings.TrimRight(b.String(), " ") + "\n")
	}
	header := func() { line(t.columns, func(_ int, s string) string { return paint(opt, ansiBold, s) }) }
	// A table of groups repeats the column names under each group's
	// heading; widths stay shared so the groups line up.
	if len(t.rows) == 0 || t.rows[0].heading == "" {
		header()
	}
	for i, r := range t.rows {
		if r.heading != "" {
			if i > 0 {
				out.WriteString("\n")
			}
			out.WriteString(paint(opt, ansiBold, r.heading) + "\n")
			header()
			continue
		}
		line(r.cells, func(i int, s string) string {
			if t.columns[i] == "STATUS" {
				return paint(opt, statusColor(strings.TrimSpace(s)), s)
			}
			return s
		})
	}
}

// statusColor picks a colour by meaning: green serves traffic, red does
// not, yellow is in between (transitions, maintenance, draining).
func statusColor(status string) string {
	switch status {
	case "":
		return ""
	case "UP", "OPEN", "no check":
		return ansiGreen
	case "DOWN", "STOP":
		return ansiRed
	}
	// MAINT, DRAIN, NOLB, FULL and transitions such as "UP 1/3".
	return ansiYellow
}

func paint(opt RenderOptions, color, s string) string {
	if !opt.Color || color == "" {
		return s
	}
	// Colour only the text, not the padding, so terminals that underline or
	// invert do not paint trailing spaces.
	trimmed := strings.TrimRight(s, " ")
	return color + trimmed + ansiReset + s[len(trimmed):]
}
