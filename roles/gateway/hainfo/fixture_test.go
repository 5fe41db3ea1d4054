package hainfo

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fixtures are verbatim replies of HAProxy 2.6 and 3.2 to the same
// scenario; see testdata/README.md.
var fixtures = []struct{ name, version, stat, info string }{
	{"haproxy26", "2.6.12-1+deb12u4", "testdata/show_stat_haproxy26.csv", "testdata/show_info_haproxy26.txt"},
	{"haproxy32", "3.2.26-1", "testdata/show_stat_haproxy32.csv", "testdata/show_info_haproxy32.txt"},
}

var fixtureTime = time.Date(2026, 11, 22, 4, 25, 0, 0, time.UTC)

// eachFixture runs f as a subtest per captured HAProxy release.
func eachFixture(t *testing.T, f func(t *testing.T, stat string, info Info, version string)) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			stat, err := os.ReadFile(fx.stat)
			if err != nil {
				t.Fatal(err)
			}
			infoText, err := os.ReadFile(fx.info)
			if err != nil {
				t.Fatal(err)
			}
			info, err := ParseInfo(string(infoText))
			if err != nil {
				t.Fatalf("ParseInfo(%s): %v", fx.info, err)
			}
			f(t, string(stat), info, fx.version)
		})
	}
}

func reportFrom(t *testing.T, statText string, info Info, backends ...string) *Report {
	t.Helper()
	tab, err := ParseStat(strings.NewReader(statText))
	if err != nil {
		t.Fatalf("ParseStat: %v", err)
	}
	rep, err := BuildReport("/run/haproxy/admin.sock", fixtureTime, info, tab, backends)
	if err != nil {
		t.Fatalf("BuildReport: %v", err)
	}
	return rep
}

func findBackend(t *testing.T, r *Report, name string) Backend {
	t.Helper()
	for _, b := range r.Backends {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("no backend %q in report", name)
	return Backend{}
}

func findServer(t *testing.T, b Backend, name string) Server {
	t.Helper()
	for _, s := range b.Servers {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no server %q in backend %q", name, b.Name)
	return Server{}
}

func val(p *int64) string { return num(p) }

// rewriteColumns re-encodes a "show stat" reply with its columns in the
// order given by pick (indexes into the original header); cells move with
// their column, and values are quoted by encoding/csv where HAProxy would.
func rewriteColumns(t *testing.T, statText string, pick []int) string {
	t.Helper()
	lines := strings.SplitN(statText, "\n", 2)
	header, body := strings.TrimPrefix(lines[0], "# "), lines[1]
	names, err := csv.NewReader(strings.NewReader(header)).Read()
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(strings.NewReader(body))
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	out := make([]string, len(pick))
	for i, p := range pick {
		out[i] = names[p]
	}
	buf.WriteString("# ")
	if err := w.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		for i, p := range pick {
			out[i] = ""
			if p < len(r) {
				out[i] = r[p]
			}
		}
		if err := w.Write(out); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	buf.WriteString("\n")
	return buf.String()
}

func headerNames(t *testing.T, statText string) []string {
	t.Helper()
	header := strings.TrimPrefix(strings.SplitN(statText, "\n", 2)[0], "# ")
	names, err := csv.NewReader(strings.NewReader(header)).Read()
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestFixtureServersAsHAProxyReportsThem(t *testing.T) {
	eachFixture(t, checkFixtureServers)
}

func checkFixtureServers(t *testing.T, stat string, info Info, version string) {
	rep := reportFrom(t, stat, info)

	if rep.Info.Version != version || val(rep.Info.Threads) != "2" || val(rep.Info.Processes) != "1" {
		t.Errorf("info = %+v, want version %s, 2 threads, 1 process", rep.Info, version)
	}
	api := findBackend(t, rep, "be_api")
	if api.Mode != "http" || api.Status != "UP" || api.Algorithm != "roundrobin" {
		t.Errorf("be_api = mode %q status %q algo %q, want http UP roundrobin", api.Mode, api.Status, api.Algorithm)
	}
	want := map[string]struct{ status, total, check string }{
		"live":  {"UP", "7 requests", "L7OK/200 in 1ms"},
		"dead":  {"DOWN", "0 requests", "L4CON in 0ms: Connection refused"},
		"spare": {"MAINT", "0 requests", ""},
		"drain": {"DRAIN", "0 requests", "L7OK/200 in 1ms"},
		"flap":  {"DOWN 1/3", "0 requests", "L7OK/200 in "},
	}
	for name, w := range want {
		s := findServer(t, api, name)
		got := val(s.Total.Value) + " " + s.Total.Unit
		check := ""
		if s.LastCheck != nil {
			check = s.LastCheck.Summary
		}
		// flap's check took a varying time to the new listener.
		if name == "flap" && strings.HasPrefix(check, w.check) {
			check = w.check
		}
		if s.Status != w.status || got != w.total || check != w.check {
			t.Errorf("server %s = status %q total %q check %q, want %q %q %q", name, s.Status, got, check, w.status, w.total, w.check)
		}
		if s.Rate.Unit != UnitSessionsPerSecond {
			t.Errorf("server %s rate unit = %q; HAProxy has no per-server req_rate, want %q", name, s.Rate.Unit, UnitSessionsPerSecond)
		}
	}
	// flap took one request whose connection failed and was retried: stot
	// says 4, but no request was answered.
	if flap := findServer(t, api, "flap"); val(flap.ConnectionErrors) != "1" || val(flap.CheckFailures) != "1" {
		t.Errorf("flap econ=%s chkfail=%s, want 1 and 1", val(flap.ConnectionErrors), val(flap.CheckFailures))
	}
	// HAProxy's act counts servers that take new traffic: a DRAIN server is
	// up but does not.
	if val(api.ServersInService) != "1" || len(api.Servers) != 5 {
		t.Errorf("be_api servers up %s of %d, want 1 of 5 (act+bck of the BACKEND line)", val(api.ServersInService), len(api.Servers))
	}
	var chkfail int64
	for _, s := range api.Servers {
		if s.CheckFailures != nil {
			chkfail += *s.CheckFailures
		}
	}
	if val(api.CheckFailures) != strconv.FormatInt(chkfail, 10) || chkfail < 2 || val(api.ConnectionErrors) != "1" || val(api.Total.Value) != "8" {
		t.Errorf("be_api chkfail=%s econ=%s total=%s, want the servers' chkfail sum (%d, at least dead's and flap's), 1, 8", val(api.CheckFailures), val(api.ConnectionErrors), val(api.Total.Value), chkfail)
	}

	if down := findBackend(t, rep, "be_down"); down.Status != "DOWN" || val(down.ServersInService) != "0" {
		t.Errorf("be_down = %q with %s up, want DOWN with 0 up", down.Status, val(down.ServersInService))
	}

	db := findBackend(t, rep, "tcp_db")
	if db.Mode != "tcp" || db.Total.Unit != UnitSessions || val(db.Total.Value) != "2" {
		t.Errorf("tcp_db = mode %q total %s %s, want tcp, 2 sessions", db.Mode, val(db.Total.Value), db.Total.Unit)
	}
	if db2 := findServer(t, db, "db2"); db2.Status != "no check" || db2.LastCheck != nil || db2.CheckFailures != nil {
		t.Errorf("db2 = status %q check %+v chkfail %s, want \"no check\", no check result, no chkfail", db2.Status, db2.LastCheck, val(db2.CheckFailures))
	}

	if len(rep.Frontends) != 2 {
		t.Fatalf("frontends = %+v, want fe_api and tcp_db", rep.Frontends)
	}
	fe := rep.Frontends[0]
	if fe.Name != "fe_api" || fe.Rate.Unit != UnitRequestsPerSecond || val(fe.Total.Value) != "8" || fe.Total.Unit != UnitRequests {
		t.Errorf("fe_api = %+v, want req/s rate and 8 requests", fe)
	}
	if tcp := rep.Frontends[1]; tcp.Rate.Unit != UnitSessionsPerSecond || tcp.Total.Unit != UnitSessions || val(tcp.Total.Value) != "2" {
		t.Errorf("tcp_db frontend = %+v, want sess/s and 2 sessions", tcp)
	}
}

func TestFixturePermutedColumnsGiveSameReport(t *testing.T) {
	eachFixture(t, checkPermutedColumns)
}

func checkPermutedColumns(t *testing.T, stat string, info Info, _ string) {
	base := reportFrom(t, stat, info)
	var baseTable bytes.Buffer
	if err := WriteTable(&baseTable, base, RenderOptions{}); err != nil {
		t.Fatal(err)
	}

	n := len(headerNames(t, stat))
	orders := map[string][]int{}
	rev := make([]int, n)
	for i := range rev {
		rev[i] = n - 1 - i
	}
	orders["reversed"] = rev
	for _, seed := range []int64{1, 2, 3} {
		orders[fmt.Sprintf("shuffled-%d", seed)] = rand.New(rand.NewSource(seed)).Perm(n)
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			permuted := rewriteColumns(t, stat, order)
			names := headerNames(t, permuted)
			if names[0] == "pxname" && names[1] == "svname" {
				t.Fatalf("permutation %s left pxname,svname in front; it proves nothing", name)
			}
			got := reportFrom(t, permuted, info)
			if !reflect.DeepEqual(got, base) {
				t.Errorf("report from permuted columns differs:\n got %+v\nwant %+v", got, base)
			}
			var table bytes.Buffer
			if err := WriteTable(&table, got, RenderOptions{}); err != nil {
				t.Fatal(err)
			}
			if table.String() != baseTable.String() {
				t.Errorf("table from permuted columns differs:\n%s\nwant:\n%s", table.String(), baseTable.String())
			}
		})
	}
}

func TestFixtureMissingColumnsShowDash(t *testing.T) {
	eachFixture(t, checkMissingColumns)
}

func checkMissingColumns(t *testing.T, stat string, info Info, _ string) {
	drop := map[string]bool{"chkfail": true, "check_code": true, "check_duration": true, "econ": true, "type": true, "mode": true, "req_tot": true, "req_rate": true}
	var keep []int
	for i, n := range headerNames(t, stat) {
		if !drop[n] {
			keep = append(keep, i)
		}
	}
	rep := reportFrom(t, rewriteColumns(t, stat, keep), info)
	live := findServer(t, findBackend(t, rep, "be_api"), "live")
	if live.CheckFailures != nil || live.ConnectionErrors != nil {
		t.Errorf("live chkfail=%s econ=%s, want null for columns HAProxy did not send", val(live.CheckFailures), val(live.ConnectionErrors))
	}
	if live.LastCheck == nil || live.LastCheck.Summary != "L7OK" {
		t.Errorf("live last check = %+v, want just L7OK without code and duration", live.LastCheck)
	}
	// Without req_tot the HTTP total is the sum of the response counters,
	// and without mode the HTTP rows are still told apart by them.
	if val(live.Total.Value) != "7" || live.Total.Unit != UnitRequests {
		t.Errorf("live total = %s %s, want 7 requests from hrsp_*", val(live.Total.Value), live.Total.Unit)
	}
	if db1 := findServer(t, findBackend(t, rep, "tcp_db"), "db1"); db1.Total.Unit != UnitSessions {
		t.Errorf("db1 total unit = %q, want sessions for a TCP server", db1.Total.Unit)
	}
	if len(rep.Frontends) != 2 {
		t.Errorf("without the type column, frontends = %d, want 2 found by svname FRONTEND", len(rep.Frontends))
	}

	var out bytes.Buffer
	if err := WriteTable(&out, rep, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	rows := parseTable(t, out.String(), "SERVER")
	row := rows["be_api/live"]
	if row == nil {
		t.Fatalf("no be_api/live row in\n%s", out.String())
	}
	if row["CHKFAIL"] != "-" || row["ECON"] != "-" {
		t.Errorf("live row = %v, want - for CHKFAIL and ECON\n%s", row, out.String())
	}
}

func TestFixtureQuotedCellWithComma(t *testing.T) {
	eachFixture(t, checkQuotedCell)
}

func checkQuotedCell(t *testing.T, stat string, info Info, _ string) {
	// HAProxy quotes a cell that holds a comma or a quote; check texts can.
	quoted := strings.Replace(stat, ",Connection refused,", `,"Connection refused, ""port"" closed",`, 1)
	if quoted == stat {
		t.Fatal("fixture has no Connection refused cell to quote")
	}
	rep := reportFrom(t, quoted, info)
	dead := findServer(t, findBackend(t, rep, "be_api"), "dead")
	if dead.LastCheck == nil || dead.LastCheck.Detail != `Connection refused, "port" closed` || dead.Status != "DOWN" {
		t.Errorf("dead = %+v, want the quoted detail unquoted and columns after it in place", dead)
	}
}

func TestBackendFilter(t *testing.T) {
	eachFixture(t, checkBackendFilter)
}

func checkBackendFilter(t *testing.T, stat string, info Info, _ string) {
	rep := reportFrom(t, stat, info, "tcp_db")
	if len(rep.Backends) != 1 || rep.Backends[0].Name != "tcp_db" || len(rep.Frontends) != 0 {
		t.Errorf("filtered report has backends %v and %d frontends, want only tcp_db", rep.Backends, len(rep.Frontends))
	}
	tab, err := ParseStat(strings.NewReader(stat))
	if err != nil {
		t.Fatal(err)
	}
	_, err = BuildReport("/s", fixtureTime, info, tab, []string{"be_nope"})
	if err == nil || !strings.Contains(err.Error(), `"be_nope"`) || !strings.Contains(err.Error(), "be_api, be_down, tcp_db") {
		t.Errorf("unknown backend error = %v, want it to name be_nope and list be_api, be_down, tcp_db", err)
	}
}

func TestParseStatRejectsOtherReplies(t *testing.T) {
	for _, reply := range []string{
		"Unknown command, but maybe one of the following ones is a better match:\n  show proc\n",
		"Permission denied\n\n",
		"",
		"# name,value\nx,1\n",
	} {
		if _, err := ParseStat(strings.NewReader(reply)); !errors.Is(err, ErrNotStatCSV) {
			t.Errorf("ParseStat(%q) error = %v, want ErrNotStatCSV", reply, err)
		}
	}
	if _, err := ParseInfo("Unknown command\n"); !errors.Is(err, ErrNotInfo) {
		t.Errorf("ParseInfo(Unknown command) error = %v, want ErrNotInfo", err)
	}
}

// parseTable reads the server or frontend table of WriteTable's output by
// the positions of the column names in its header lines, as a user's eye
// does. Server rows are keyed "backend/server", backend totals
// "backend/BACKEND", frontend rows by name.
func parseTable(t *testing.T, out, first string) map[string]map[string]string {
	t.Helper()
	rows := map[string]map[string]string{}
	var starts []int
	var names []string
	backend := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "backend "):
			backend = strings.Fields(line)[1]
			continue
		case strings.HasPrefix(line, first+" "):
			starts, names = nil, nil
			for _, col := range columnsFor(first) {
				i := strings.Index(line, col)
				if i < 0 {
					t.Fatalf("header %q lacks column %q", line, col)
				}
				starts, names = append(starts, i), append(names, col)
			}
			continue
		case line == "" || starts == nil:
			if line == "" {
				starts = nil
			}
			continue
		}
		row := map[string]string{}
		for i, s := range starts {
			end := len(line)
			if i+1 < len(starts) && starts[i+1] < end {
				end = starts[i+1]
			}
			if s < len(line) {
				row[names[i]] = strings.TrimSpace(line[s:end])
			}
		}
		key := row[first]
		if first == "SERVER" {
			key = backend + "/" + key
		}
		rows[key] = row
	}
	return rows
}

func columnsFor(first string) []string {
	if first == "SERVER" {
		return serverColumns
	}
	return frontendColumns
}

// The two releases answered the same scenario with different headers; the
// reports must tell the same story.
func TestFixtureReleasesAgree(t *testing.T) {
	type view map[string]string
	summarize := func(r *Report) view {
		v := view{}
		for _, f := range r.Frontends {
			v["frontend "+f.Name] = fmt.Sprintf("%s %s %s", f.Status, f.Mode, total(f.Total))
		}
		for _, b := range r.Backends {
			v["backend "+b.Name] = fmt.Sprintf("%s %s %s econ=%s up=%s", b.Status, b.Mode, total(b.Total), val(b.ConnectionErrors), val(b.ServersInService))
			for _, s := range b.Servers {
				check := missing
				if s.LastCheck != nil {
					check = s.LastCheck.Status + "/" + s.LastCheck.Code
				}
				v["server "+b.Name+"/"+s.Name] = fmt.Sprintf("%s %s %s econ=%s eresp=%s check=%s", s.Status, total(s.Total), s.Rate.Unit, val(s.ConnectionErrors), val(s.ResponseErrors), check)
			}
		}
		return v
	}
	var views []view
	var headers [][]string
	eachFixture(t, func(t *testing.T, stat string, info Info, _ string) {
		views = append(views, summarize(reportFrom(t, stat, info)))
		headers = append(headers, headerNames(t, stat))
	})
	if len(views) != 2 {
		t.Fatalf("read %d fixtures, want 2", len(views))
	}
	if reflect.DeepEqual(headers[0], headers[1]) {
		t.Fatal("the fixtures' headers are identical; the test proves nothing")
	}
	if !reflect.DeepEqual(views[0], views[1]) {
		for k, a := range views[0] {
			if b := views[1][k]; a != b {
				t.Errorf("%s: 2.6 %q, 3.2 %q", k, a, b)
			}
		}
		for k := range views[1] {
			if _, ok := views[0][k]; !ok {
				t.Errorf("%s only in 3.2", k)
			}
		}
	}
}
