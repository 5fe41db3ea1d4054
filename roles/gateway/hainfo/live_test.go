package hainfo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/testenv"
)

// haproxyCommand is how these tests run HAProxy: the program, preceded by
// any wrapper. It is the one place to change to run the same tests against
// another build. The test's temporary directory must be visible at the same
// path to that HAProxy; for HAProxy 3.2 in an extracted gateway tree ROOT,
// as root, this prefix does it (and the tests pass with it):
//
//	unshare -m sh -c 'mount --bind /tmp ROOT/tmp && exec chroot ROOT /usr/sbin/haproxy "$@"' haproxy
func haproxyCommand(t *testing.T) []string {
	return []string{testenv.RequireTool(t, "haproxy")}
}

// startHAProxy runs command -db -f cfg [extra...] in the foreground, stops
// it when the test ends, and waits until the stats socket answers.
func startHAProxy(t *testing.T, command []string, cfg, socket string, extra ...string) {
	t.Helper()
	args := append(append(append([]string(nil), command[1:]...), "-db", "-f", cfg), extra...)
	cmd := exec.Command(command[0], args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", strings.Join(cmd.Args, " "), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before its stats socket came up: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
		default:
		}
		if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats socket %s did not come up within 10s\n%s", socket, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// appServer is the HTTP server behind the "live" HAProxy server; it can be
// stopped and started again on the same port.
type appServer struct {
	addr     string
	requests atomic.Int64
	srv      *http.Server
}

func (a *appServer) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		t.Fatalf("listening on %s: %v", a.addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		a.requests.Add(1)
		io.WriteString(w, "hello\n")
	})
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go a.srv.Serve(ln)
}

func (a *appServer) stop() {
	if a.srv != nil {
		a.srv.Close()
		a.srv = nil
	}
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testGateway is a real HAProxy with a frontend, a backend whose "live"
// server is an appServer and whose "dead" server is a closed port, and
// admin stats sockets on a unix path and on loopback TCP.
type testGateway struct {
	dir       string
	cfg       string
	socket    string
	tcpSocket string
	frontend  string
	app       *appServer
}

const gatewayConfig = `global
    stats socket {{dir}}/admin.sock mode 600 level admin
    stats socket ipv4@127.0.0.1:{{stats}} level admin
    stats timeout 10s

defaults
    mode http
    timeout connect 500ms
    timeout client 5s
    timeout server 5s

frontend fe_test
    bind 127.0.0.1:{{fe}}
    default_backend be_app

backend be_app
    balance roundrobin
    option httpchk GET /health
    server live 127.0.0.1:{{live}} check inter 200ms fall 2 rise 2
    server dead 127.0.0.1:{{dead}} check inter 200ms fall 2 rise 2
`

func newGateway(t *testing.T, extra ...string) *testGateway {
	t.Helper()
	command := haproxyCommand(t)
	dir := t.TempDir()
	livePort, deadPort, fePort, statsPort := freePort(t), freePort(t), freePort(t), freePort(t)
	cfg := strings.NewReplacer(
		"{{dir}}", dir,
		"{{stats}}", strconv.Itoa(statsPort),
		"{{fe}}", strconv.Itoa(fePort),
		"{{live}}", strconv.Itoa(livePort),
		"{{dead}}", strconv.Itoa(deadPort),
	).Replace(gatewayConfig)
	g := &testGateway{
		dir:       dir,
		cfg:       filepath.Join(dir, "haproxy.cfg"),
		socket:    filepath.Join(dir, "admin.sock"),
		tcpSocket: fmt.Sprintf("ipv4@127.0.0.1:%d", statsPort),
		frontend:  fmt.Sprintf("http://127.0.0.1:%d", fePort),
		app:       &appServer{addr: fmt.Sprintf("127.0.0.1:%d", livePort)},
	}
	if err := os.WriteFile(g.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g.app.start(t)
	t.Cleanup(g.app.stop)
	startHAProxy(t, command, g.cfg, g.socket, extra...)
	return g
}

// runHainfo runs the command as a user would, bounded in time.
func runHainfo(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = Run(ctx, args, &out, &errb)
	return out.String(), errb.String(), code
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := runHainfo(t, args...)
	if code != 0 {
		t.Fatalf("hainfo %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

func jsonReport(t *testing.T, socket string) *Report {
	t.Helper()
	out := runOK(t, "--socket", socket, "--json")
	var r Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	return &r
}

func (g *testGateway) servers(t *testing.T) (live, dead Server, r *Report) {
	t.Helper()
	r = jsonReport(t, g.socket)
	be := findBackend(t, r, "be_app")
	return findServer(t, be, "live"), findServer(t, be, "dead"), r
}

// waitFor polls cond every 100ms until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
	return 0
}

func TestLiveHAProxyServerStatesAndTotals(t *testing.T) {
	g := newGateway(t)

	waitFor(t, "live UP and dead DOWN", 10*time.Second, func() (bool, string) {
		live, dead, _ := g.servers(t)
		return live.Status == "UP" && dead.Status == "DOWN", fmt.Sprintf("live %q, dead %q", live.Status, dead.Status)
	})

	out := runOK(t, "--socket", g.socket)
	rows := parseTable(t, out, "SERVER")
	if row := rows["be_app/live"]; row == nil || row["STATUS"] != "UP" || !strings.HasPrefix(row["LAST CHECK"], "L7OK/200 in ") {
		t.Errorf("live row = %v, want UP with last check L7OK/200 in Nms\n%s", row, out)
	}
	if row := rows["be_app/dead"]; row == nil || row["STATUS"] != "DOWN" ||
		!strings.HasPrefix(row["LAST CHECK"], "L4CON") || !strings.Contains(row["LAST CHECK"], "Connection refused") {
		t.Errorf("dead row = %v, want DOWN with last check L4CON ...: Connection refused\n%s", row, out)
	}
	if row := rows["be_app/BACKEND"]; row == nil || row["STATUS"] != "UP" {
		t.Errorf("backend totals row = %v, want UP\n%s", row, out)
	}
	if !strings.Contains(out, "backend be_app  http  roundrobin  1/2 servers in service") {
		t.Errorf("backend heading missing or wrong:\n%s", out)
	}

	const n = 7
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		resp, err := client.Get(g.frontend + "/api/" + strconv.Itoa(i))
		if err != nil {
			t.Fatalf("request %d through the frontend: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello\n" {
			t.Fatalf("request %d: %d %q, want 200 from the live server", i, resp.StatusCode, body)
		}
	}
	if got := g.app.requests.Load(); got != n {
		t.Fatalf("app server saw %d requests, want %d", got, n)
	}

	live, dead, rep := g.servers(t)
	t.Logf("HAProxy %s", rep.Info.Version)
	if val(live.Total.Value) != strconv.Itoa(n) || live.Total.Unit != UnitRequests {
		t.Errorf("live total = %s %s, want %d requests", val(live.Total.Value), live.Total.Unit, n)
	}
	if val(dead.Total.Value) != "0" {
		t.Errorf("dead total = %s, want 0", val(dead.Total.Value))
	}
	be := findBackend(t, rep, "be_app")
	if val(be.Total.Value) != strconv.Itoa(n) {
		t.Errorf("backend total = %s, want %d", val(be.Total.Value), n)
	}
	if len(rep.Frontends) != 1 || rep.Frontends[0].Name != "fe_test" || val(rep.Frontends[0].Total.Value) != strconv.Itoa(n) ||
		rep.Frontends[0].Rate.Unit != UnitRequestsPerSecond {
		t.Errorf("frontends = %+v, want fe_test with %d requests and a req/s rate", rep.Frontends, n)
	}
	if !strings.HasPrefix(rep.Info.Version, "2.") && !strings.HasPrefix(rep.Info.Version, "3.") || rep.Info.PID == nil {
		t.Errorf("info = %+v, want a version and a pid", rep.Info)
	}

	// The table and the JSON document tell the same story. Counters that
	// move on their own (rates, check durations) are left out.
	out = runOK(t, "--socket", g.socket)
	rows = parseTable(t, out, "SERVER")
	for _, s := range be.Servers {
		row := rows["be_app/"+s.Name]
		want := map[string]string{"STATUS": s.Status, "TOTAL": total(s.Total), "ECON": val(s.ConnectionErrors),
			"ERESP": val(s.ResponseErrors), "CHKFAIL": val(s.CheckFailures), "CUR": val(s.CurrentSessions)}
		for col, w := range want {
			if row[col] != w {
				t.Errorf("server %s %s: table %q, JSON %q\n%s", s.Name, col, row[col], w, out)
			}
		}
		if !strings.HasSuffix(row["RATE"], " "+s.Rate.Unit) {
			t.Errorf("server %s rate: table %q, JSON unit %q", s.Name, row["RATE"], s.Rate.Unit)
		}
		if s.LastCheck == nil || strings.Fields(row["LAST CHECK"])[0] != strings.Fields(s.LastCheck.Summary)[0] {
			t.Errorf("server %s last check: table %q, JSON %+v", s.Name, row["LAST CHECK"], s.LastCheck)
		}
	}
	if row := rows["be_app/BACKEND"]; row["TOTAL"] != total(be.Total) || row["STATUS"] != be.Status {
		t.Errorf("backend row %v disagrees with JSON total %s status %s", row, total(be.Total), be.Status)
	}
	fe := parseTable(t, out, "FRONTEND")["fe_test"]
	if fe["TOTAL"] != fmt.Sprintf("%d req", n) || !strings.HasSuffix(fe["RATE"], " req/s") || fe["STATUS"] != "OPEN" {
		t.Errorf("frontend row = %v, want OPEN, %d req, a req/s rate", fe, n)
	}

	// The live server goes away: HAProxy's checks mark it DOWN after two
	// failures 200ms apart.
	g.app.stop()
	seen := map[string]bool{}
	took := waitFor(t, "live DOWN after its server stopped", 10*time.Second, func() (bool, string) {
		live, _, r := g.servers(t)
		seen[live.Status] = true
		be := findBackend(t, r, "be_app")
		return live.Status == "DOWN" && live.LastCheck != nil && !live.LastCheck.Passed() && be.Status == "DOWN",
			fmt.Sprintf("live %q check %+v, backend %q", live.Status, live.LastCheck, be.Status)
	})
	t.Logf("live went DOWN in %s; statuses seen: %v", took, seen)

	g.app.start(t)
	took = waitFor(t, "live UP after its server came back", 10*time.Second, func() (bool, string) {
		live, _, _ := g.servers(t)
		return live.Status == "UP" && live.LastCheck != nil && live.LastCheck.Status == "L7OK",
			fmt.Sprintf("live %q check %+v", live.Status, live.LastCheck)
	})
	t.Logf("live came back UP in %s", took)
}

func TestLiveHAProxyTCPStatsSocket(t *testing.T) {
	g := newGateway(t)
	waitFor(t, "dead DOWN", 10*time.Second, func() (bool, string) {
		_, dead, _ := g.servers(t)
		return dead.Status == "DOWN", dead.Status
	})
	out := runOK(t, "--socket", g.tcpSocket, "--backend", "be_app")
	rows := parseTable(t, out, "SERVER")
	if rows["be_app/live"]["STATUS"] != "UP" || rows["be_app/dead"]["STATUS"] != "DOWN" {
		t.Errorf("over %s: rows %v, want live UP and dead DOWN\n%s", g.tcpSocket, rows, out)
	}
	if !strings.Contains(out, "socket "+g.tcpSocket) || strings.Contains(out, "FRONTEND") {
		t.Errorf("header should name %s and --backend should hide frontends:\n%s", g.tcpSocket, out)
	}
}

func TestLiveHAProxyMasterCLIIsAClearError(t *testing.T) {
	dir := t.TempDir()
	master := filepath.Join(dir, "master.sock")
	newGateway(t, "-W", "-S", master)
	// The master re-executes itself after forking the worker; wait until
	// its CLI answers at all.
	mc := &Client{Address: Address{Network: "unix", Addr: master, Raw: master}, Timeout: time.Second}
	waitFor(t, "master CLI answering", 10*time.Second, func() (bool, string) {
		reply, err := mc.Command(context.Background(), "show proc")
		return err == nil && reply != "", fmt.Sprintf("%q %v", reply, err)
	})
	_, errs, code := runHainfo(t, "--socket", master)
	if code != 1 {
		t.Fatalf("exit = %d, want 1", code)
	}
	for _, want := range []string{master, "Unknown command", "master CLI"} {
		if !strings.Contains(errs, want) {
			t.Errorf("error %q should mention %q", errs, want)
		}
	}
}

func TestLiveHAProxyWatchPrintsFrames(t *testing.T) {
	g := newGateway(t)

	start := time.Now()
	out := runOK(t, "--socket", g.socket, "--watch=300ms", "--count", "2")
	elapsed := time.Since(start)
	if frames := strings.Count("\n"+out, "\nHAProxy "); frames != 2 {
		t.Errorf("--watch --count 2 printed %d frames, want 2:\n%s", frames, out)
	}
	if strings.Count(out, "backend be_app") != 2 || strings.Contains(out, "\x1b") {
		t.Errorf("each frame should hold the backend, without escape codes off a terminal:\n%s", out)
	}
	if elapsed < 300*time.Millisecond {
		t.Errorf("two frames took %s, want at least the 300ms interval between them", elapsed)
	}

	out = runOK(t, "--socket", g.socket, "--json", "--watch=100ms", "--count=3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("--json --watch --count=3 printed %d lines, want 3:\n%s", len(lines), out)
	}
	for i, l := range lines {
		var r Report
		if err := json.Unmarshal([]byte(l), &r); err != nil || len(r.Backends) != 1 {
			t.Errorf("frame %d is not a report with be_app: %v\n%s", i+1, err, l)
		}
	}

	// Without --count the watch runs until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	var buf syncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"--socket", g.socket, "--watch=100ms"}, &buf, io.Discard) }()
	waitFor(t, "a first frame", 10*time.Second, func() (bool, string) {
		return strings.Contains(buf.String(), "backend be_app"), buf.String()
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("interrupted watch exited %d, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop within 5s of being interrupted")
	}
}
