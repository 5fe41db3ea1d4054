package hainfo

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Units of Rate and Total. They are part of the JSON document.
const (
	// UnitRequestsPerSecond: HTTP requests over the last second (req_rate).
	UnitRequestsPerSecond = "req/s"
	// UnitSessionsPerSecond: new sessions over the last second (rate). For
	// an HTTP server every request is one session, so the two agree there.
	UnitSessionsPerSecond = "sess/s"
	// UnitRequests: HTTP requests (req_tot, or the hrsp_* sum).
	UnitRequests = "requests"
	// UnitSessions: sessions (stot); for TCP, one per client connection.
	UnitSessions = "sessions"
)

// Report is the whole picture one refresh shows; --json prints it as is.
type Report struct {
	// Socket is the stats socket as given.
	Socket string `json:"socket"`
	// Time is when the stats were read, UTC.
	Time time.Time `json:"time"`
	// Info is the process summary from "show info".
	Info Info `json:"info"`
	// Frontends are listed in HAProxy's order; empty when --backend filters.
	Frontends []Frontend `json:"frontends"`
	// Backends are listed in HAProxy's order.
	Backends []Backend `json:"backends"`
}

// Metric is a number with the unit it was measured in. Value is null when
// HAProxy did not report the field.
type Metric struct {
	Value *int64 `json:"value"`
	Unit  string `json:"unit"`
}

// Frontend is one FRONTEND line.
type Frontend struct {
	Name string `json:"name"`
	// Status is as HAProxy reports it: OPEN, STOP, FULL.
	Status string `json:"status"`
	// Mode is http or tcp.
	Mode string `json:"mode"`
	// CurrentSessions is scur.
	CurrentSessions *int64 `json:"current_sessions"`
	// Rate is req_rate for HTTP frontends, else rate.
	Rate Metric `json:"rate"`
	// Total is req_tot for HTTP frontends, else stot.
	Total Metric `json:"total"`
	// RequestErrors is ereq.
	RequestErrors *int64 `json:"request_errors"`
	// DeniedRequests is dreq.
	DeniedRequests *int64 `json:"denied_requests"`
}

// Backend is one BACKEND line with its servers.
type Backend struct {
	Name string `json:"name"`
	// Status is as HAProxy reports it: UP, DOWN.
	Status string `json:"status"`
	// Mode is http or tcp.
	Mode string `json:"mode"`
	// Algorithm is the balance algorithm (algo).
	Algorithm string `json:"algorithm"`
	// ServersInService is how many servers take new traffic, HAProxy's act + bck:
	// UP servers, not DRAIN or MAINT ones.
	ServersInService *int64 `json:"servers_in_service"`
	// CurrentSessions is scur.
	CurrentSessions *int64 `json:"current_sessions"`
	// Rate is rate in sess/s; HAProxy has no per-backend request rate.
	Rate Metric `json:"rate"`
	// Total is computed as for servers (see the package documentation).
	Total Metric `json:"total"`
	// ConnectionErrors is econ: the servers' plus those not tied to a
	// server, such as no server being available.
	ConnectionErrors *int64 `json:"connection_errors"`
	// ResponseErrors is eresp.
	ResponseErrors *int64 `json:"response_errors"`
	// CheckFailures is the sum of the servers' chkfail; HAProxy has none
	// per backend.
	CheckFailures *int64 `json:"check_failures"`
	// Servers are listed in configuration order.
	Servers []Server `json:"servers"`
}

// Server is one server line.
type Server struct {
	Name string `json:"name"`
	// Address is addr, host:port.
	Address string `json:"address"`
	// Status is exactly as HAProxy reports it: UP, DOWN, MAINT, DRAIN,
	// NOLB, "no check", or a transition such as "UP 1/3" (up, one failed
	// check of three allowed) or "DOWN 1/2" (down, one good check of two
	// needed).
	Status string `json:"status"`
	// Backup is true for a backup server (bck).
	Backup bool `json:"backup"`
	// CurrentSessions is scur.
	CurrentSessions *int64 `json:"current_sessions"`
	// Rate: req_rate when HAProxy reports it for servers, else rate in
	// sess/s (HAProxy 2.6 to 3.2 report req_rate for frontends only).
	Rate Metric `json:"rate"`
	// Total: see the package documentation.
	Total Metric `json:"total"`
	// ConnectionErrors is econ.
	ConnectionErrors *int64 `json:"connection_errors"`
	// ResponseErrors is eresp.
	ResponseErrors *int64 `json:"response_errors"`
	// CheckFailures is chkfail: failed checks while the server was up.
	CheckFailures *int64 `json:"check_failures"`
	// LastCheck is null when the server is not health checked.
	LastCheck *Check `json:"last_check"`
}

// Check is the result of a server's last health check.
type Check struct {
	// Status is check_status without the "* " HAProxy adds while a check
	// runs: L4OK, L4CON, L7OK, L7STS, ...
	Status string `json:"status"`
	// Running is true when a new check was in progress.
	Running bool `json:"running"`
	// Code is check_code, the layer 5-7 code (an HTTP status), or "".
	Code string `json:"code"`
	// DurationMS is check_duration in milliseconds.
	DurationMS *int64 `json:"duration_ms"`
	// Description is check_desc, e.g. "Layer4 connection problem".
	Description string `json:"description"`
	// Detail is last_chk, e.g. "Connection refused".
	Detail string `json:"detail"`
	// Summary is the text the table shows, e.g. "L7OK/200 in 1ms".
	Summary string `json:"summary"`
}

// Passed reports whether the check status is one of HAProxy's *OK states.
func (c Check) Passed() bool {
	return strings.HasSuffix(c.Status, "OK") || c.Status == "L7OKC"
}

// BuildReport turns a stat table and process info into a Report. A non-empty
// backends list keeps only those backends (and no frontends); a name that
// matches nothing is an error listing the names that exist.
func BuildReport(socket string, now time.Time, info Info, t *StatTable, backends []string) (*Report, error) {
	rep := &Report{Socket: socket, Time: now.UTC(), Info: info, Frontends: []Frontend{}, Backends: []Backend{}}
	byName := map[string]*Backend{}
	var order []string
	backendOf := func(name string) *Backend {
		if b, ok := byName[name]; ok {
			return b
		}
		b := &Backend{Name: name, Servers: []Server{}}
		byName[name] = b
		order = append(order, name)
		return b
	}
	hasBackendLine := map[string]bool{}
	for _, r := range t.Rows {
		px := r.Str("pxname")
		switch rowKind(r) {
		case kindFrontend:
			rep.Frontends = append(rep.Frontends, frontendFrom(r))
		case kindBackend:
			b := backendOf(px)
			fillBackend(b, r)
			hasBackendLine[px] = true
		case kindServer:
			b := backendOf(px)
			b.Servers = append(b.Servers, serverFrom(r))
		}
	}
	for _, name := range order {
		b := byName[name]
		if !hasBackendLine[name] {
			// A filtered "show stat" may omit the BACKEND line; the servers
			// still say what they are.
			if len(b.Servers) > 0 {
				b.Mode = b.Servers[0].modeHint()
			}
		}
		b.CheckFailures = sumCheckFailures(b.Servers)
		if b.ServersInService == nil {
			b.ServersInService = countUp(b.Servers)
		}
		rep.Backends = append(rep.Backends, *b)
	}
	if len(backends) == 0 {
		return rep, nil
	}
	keep := map[string]bool{}
	for _, n := range backends {
		if _, ok := byName[n]; !ok {
			names := append([]string(nil), order...)
			sort.Strings(names)
			return nil, fmt.Errorf("no backend %q on HAProxy stats socket %s; backends are: %s", n, socket, strings.Join(names, ", "))
		}
		keep[n] = true
	}
	filtered := rep.Backends[:0]
	for _, b := range rep.Backends {
		if keep[b.Name] {
			filtered = append(filtered, b)
		}
	}
	rep.Backends = filtered
	rep.Frontends = []Frontend{}
	return rep, nil
}

type kind int

const (
	kindOther kind = iota
	kindFrontend
	kindBackend
	kindServer
)

// rowKind uses the type column (0 frontend, 1 backend, 2 server,
// 3 listener) and falls back on svname's FRONTEND/BACKEND when it is absent.
func rowKind(r StatRow) kind {
	if v, ok := r.Get("type"); ok && v != "" {
		switch v {
		case "0":
			return kindFrontend
		case "1":
			return kindBackend
		case "2":
			return kindServer
		default:
			return kindOther
		}
	}
	switch r.Str("svname") {
	case "FRONTEND":
		return kindFrontend
	case "BACKEND":
		return kindBackend
	}
	if _, ok := r.Get("type"); ok {
		return kindOther
	}
	return kindServer
}

// rowMode is the mode column, or a guess from the HTTP response counters,
// which HAProxy leaves empty in TCP mode.
func rowMode(r StatRow) string {
	if m := r.Str("mode"); m != "" {
		return m
	}
	if r.Int("hrsp_2xx") != nil {
		return "http"
	}
	if r.Has("hrsp_2xx") {
		return "tcp"
	}
	return ""
}

var hrspColumns = []string{"hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"}

// requestTotal implements the documented choice of "total" for any row.
func requestTotal(r StatRow, mode string) Metric {
	if mode != "tcp" {
		if v := r.Int("req_tot"); v != nil {
			return Metric{Value: v, Unit: UnitRequests}
		}
		var sum int64
		seen := false
		for _, c := range hrspColumns {
			if v := r.Int(c); v != nil {
				sum += *v
				seen = true
			}
		}
		if seen {
			return Metric{Value: &sum, Unit: UnitRequests}
		}
	}
	return Metric{Value: r.Int("stot"), Unit: UnitSessions}
}

func requestRate(r StatRow, mode string) Metric {
	if mode != "tcp" {
		if v := r.Int("req_rate"); v != nil {
			return Metric{Value: v, Unit: UnitRequestsPerSecond}
		}
	}
	return Metric{Value: r.Int("rate"), Unit: UnitSessionsPerSecond}
}

func frontendFrom(r StatRow) Frontend {
	mode := rowMode(r)
	return Frontend{
		Name:            r.Str("pxname"),
		Status:          r.Str("status"),
		Mode:            mode,
		CurrentSessions: r.Int("scur"),
		Rate:            requestRate(r, mode),
		Total:           requestTotal(r, mode),
		RequestErrors:   r.Int("ereq"),
		DeniedRequests:  r.Int("dreq"),
	}
}

func fillBackend(b *Backend, r StatRow) {
	mode := rowMode(r)
	b.Status = r.Str("status")
	b.Mode = mode
	b.Algorithm = r.Str("algo")
	b.CurrentSessions = r.Int("scur")
	b.Rate = requestRate(r, mode)
	b.Total = requestTotal(r, mode)
	b.ConnectionErrors = r.Int("econ")
	b.ResponseErrors = r.Int("eresp")
	act, bck := r.Int("act"), r.Int("bck")
	if act != nil && bck != nil {
		n := *act + *bck
		b.ServersInService = &n
	}
}

func serverFrom(r StatRow) Server {
	mode := rowMode(r)
	s := Server{
		Name:             r.Str("svname"),
		Address:          r.Str("addr"),
		Status:           r.Str("status"),
		CurrentSessions:  r.Int("scur"),
		Rate:             requestRate(r, mode),
		Total:            requestTotal(r, mode),
		ConnectionErrors: r.Int("econ"),
		ResponseErrors:   r.Int("eresp"),
		CheckFailures:    r.Int("chkfail"),
		LastCheck:        checkFrom(r),
	}
	if v := r.Int("bck"); v != nil && *v > 0 {
		s.Backup = true
	}
	return s
}

func (s Server) modeHint() string {
	if s.Total.Unit == UnitRequests {
		return "http"
	}
	return "tcp"
}

func checkFrom(r StatRow) *Check {
	status := strings.TrimSpace(r.Str("check_status"))
	if status == "" {
		return nil
	}
	c := &Check{Status: status}
	if rest, ok := strings.CutPrefix(status, "* "); ok {
		c.Status, c.Running = strings.TrimSpace(rest), true
	}
	c.Code = strings.TrimSpace(r.Str("check_code"))
	c.DurationMS = r.Int("check_duration")
	c.Description = r.Str("check_desc")
	c.Detail = r.Str("last_chk")
	c.Summary = c.summary()
	return c
}

// summary renders "L7OK/200 in 1ms", and for a failed check adds why, e.g.
// "L4CON in 0ms: Connection refused".
func (c Check) summary() string {
	var b strings.Builder
	b.WriteString(c.Status)
	if c.Code != "" {
		b.WriteString("/" + c.Code)
	}
	if c.DurationMS != nil && *c.DurationMS >= 0 {
		fmt.Fprintf(&b, " in %dms", *c.DurationMS)
	}
	if !c.Passed() {
		why := c.Detail
		if why == "" {
			why = c.Description
		}
		if why != "" {
			b.WriteString(": " + why)
		}
	}
	if c.Running {
		b.WriteString(" (checking)")
	}
	return b.String()
}

func sumCheckFailures(servers []Server) *int64 {
	var sum int64
	seen := false
	for _, s := range servers {
		if s.CheckFailures != nil {
			sum += *s.CheckFailures
			seen = true
		}
	}
	if !seen {
		return nil
	}
	return &sum
}

// countUp is the fallback when the BACKEND line's act/bck are missing: a
// server takes traffic when it is UP (also "UP 1/3", still up while
// failing), or runs without checks.
func countUp(servers []Server) *int64 {
	var n int64
	for _, s := range servers {
		if strings.HasPrefix(s.Status, "UP") || s.Status == "no check" {
			n++
		}
	}
	return &n
}
