package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/gateway/lua"
	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/seeds/seedstest"
	"github.com/applbuild/applbuild/verify/haproxytest"
	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/testenv"
)

var tlsLogJA4 = regexp.MustCompile(`fe_tls be_tls_term/\S+ .* \{([^}]*)\} tls$`)

// tlsClient is a real client making one TLS connection to addr.
type tlsClient struct {
	name string
	tool string
	run  func(ctx context.Context, addr string) error
}

func realClients() []tlsClient {
	curl := func(args ...string) func(ctx context.Context, addr string) error {
		return func(ctx context.Context, addr string) error {
			_, port, _ := net.SplitHostPort(addr)
			argv := append([]string{"--silent", "--show-error", "--fail", "--max-time", "10", "--insecure",
				"--resolve", serverName + ":" + port + ":127.0.0.1"}, args...)
			argv = append(argv, "https://"+serverName+":"+port+"/api/health")
			out, err := exec.CommandContext(ctx, "curl", argv...).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte(`"status":"ok"`)) {
				return fmt.Errorf("curl %v: %v: %s", args, err, out)
			}
			return nil
		}
	}
	sClient := func(args ...string) func(ctx context.Context, addr string) error {
		return func(ctx context.Context, addr string) error {
			cmd := exec.CommandContext(ctx, "openssl", append([]string{"s_client", "-connect", addr}, args...)...)
			out, err := cmd.CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("BEGIN CERTIFICATE")) {
				return fmt.Errorf("openssl s_client %v: %v: %s", args, err, out)
			}
			return nil
		}
	}
	goTLS := func(cfg *tls.Config) func(ctx context.Context, addr string) error {
		return func(ctx context.Context, addr string) error {
			d := tls.Dialer{Config: cfg}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			fmt.Fprintf(c, "GET /api/health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", serverName)
			buf := make([]byte, 12)
			_, err = c.Read(buf)
			c.Close()
			if err != nil || !bytes.HasPrefix(buf, []byte("HTTP/1.1 200")) {
				return fmt.Errorf("go client got %q: %v", buf, err)
			}
			return nil
		}
	}
	return []tlsClient{
		{"curl --http1.1", "curl", curl("--http1.1")},
		{"curl --http2", "curl", curl("--http2")},
		{"curl tls1.2", "curl", curl("--tlsv1.2", "--tls-max", "1.2")},
		{"openssl tls1.3 h2,http/1.1", "openssl", sClient("-servername", serverName, "-tls1_3", "-alpn", "h2,http/1.1")},
		{"openssl tls1.3 http/1.1,h2", "openssl", sClient("-servername", serverName, "-tls1_3", "-alpn", "http/1.1,h2")},
		{"openssl tls1.2 no alpn", "openssl", sClient("-servername", serverName, "-tls1_2")},
		{"go tls1.3", "", goTLS(&tls.Config{InsecureSkipVerify: true, ServerName: serverName, NextProtos: []string{"http/1.1"}})},
		{"go tls1.2", "", goTLS(&tls.Config{InsecureSkipVerify: true, ServerName: serverName, MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})},
	}
}

// TestJA4LoggedEqualsWire: for real clients, the JA4 HAProxy's Lua logged
// for the connection (and for its request) equals what the independent Go
// implementation computes from the ClientHello bytes captured on the wire.
func TestJA4LoggedEqualsWire(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, nil)
	g.waitServers(t, "UP", "node1")
	seen := map[string]bool{}
	for _, c := range realClients() {
		if c.tool != "" {
			testenv.RequireTool(t, c.tool)
		}
		rec, err := ja4.NewRecorder(g.https)
		if err != nil {
			t.Fatal(err)
		}
		from := len(g.inst.Logs())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = c.run(ctx, rec.Addr())
		cancel()
		if err != nil {
			rec.Close()
			t.Fatalf("%s: %v", c.name, err)
		}
		hellos, err := rec.WaitHellos(1, 5*time.Second)
		rec.Close()
		if err != nil || len(hellos) != 1 {
			t.Fatalf("%s: %d hellos captured: %v", c.name, len(hellos), err)
		}
		want, err := ja4.Compute(hellos[0])
		if err != nil {
			t.Fatalf("%s: the Go reference cannot fingerprint the captured hello: %v", c.name, err)
		}
		line := g.inst.WaitLogSince(from, `fe_tls be_tls_term`, 5*time.Second)
		m := tlsLogJA4.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: no JA4 in the connection log line %q", c.name, line)
		}
		if m[1] != want.JA4 {
			t.Errorf("%s: HAProxy logged JA4 %s, the wire gives %s", c.name, m[1], want.JA4)
		}
		seen[want.JA4] = true
		if c.tool != "openssl" { // s_client makes no HTTP request
			reqLine := g.inst.WaitLogSince(from, `/api/health HTTP/`, 5*time.Second)
			if lm := logFields.FindStringSubmatch(reqLine); lm == nil || lm[1] != want.JA4 {
				t.Errorf("%s: request log line %q does not carry JA4 %s", c.name, reqLine, want.JA4)
			}
		}
	}
	if len(seen) < 5 {
		t.Errorf("the clients produced only %d distinct JA4s; the matrix is meant to vary them", len(seen))
	}
}

// TestJA4OncePerConnection: several requests on one connection are one
// fe_tls session (where the Lua runs) and several fe_api requests.
func TestJA4OncePerConnection(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, nil)
	c := g.client("http/1.1")
	for i := 0; i < 5; i++ {
		if st, _, _ := g.do(t, c, "GET", "/api/health", nil, nil); st != 200 {
			t.Fatalf("status %d", st)
		}
	}
	out, err := g.inst.StatsCommand("show stat")
	if err != nil {
		t.Fatal(err)
	}
	sessions := statField(t, out, "fe_tls", "FRONTEND", "stot")
	reqs := statField(t, out, "fe_api", "FRONTEND", "req_tot")
	if sessions != "1" || reqs != "5" {
		t.Errorf("fe_tls sessions %s (where JA4 is computed), fe_api requests %s; want 1 and 5", sessions, reqs)
	}
}

// statField reads one field of `show stat` by its header name.
func statField(t testing.TB, csv, px, sv, field string) string {
	t.Helper()
	lines := strings.Split(csv, "\n")
	hdr := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	col := -1
	for i, h := range hdr {
		if h == field {
			col = i
		}
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) > col && col >= 0 && f[0] == px && f[1] == sv {
			return f[col]
		}
	}
	t.Fatalf("no %s/%s %s in show stat", px, sv, field)
	return ""
}

// TestJA4Blocklist: a site blocklist entry gets 403 JSON with the block
// logged (JA4 and tag), other clients pass, and changing the list applies
// by a reload during which an unblocked client sees no failure.
func TestJA4Blocklist(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, nil)
	g.waitServers(t, "UP", "node1")
	goClient := g.client("http/1.1")
	if st, _, _ := g.do(t, goClient, "GET", "/api/ja4-probe", nil, nil); st != 200 {
		t.Fatalf("before blocking: status %d", st)
	}
	goJA4, _, _ := g.requestLog(t, "/api/ja4-probe")
	if !regexp.MustCompile(`^t1[23]d`).MatchString(goJA4) {
		t.Fatalf("logged JA4 %q does not look like one", goJA4)
	}

	// An unblocked client (TLS 1.2 only: another fingerprint) loops during
	// the reload.
	other := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: g.pool, ServerName: serverName, MaxVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, n, g.https)
		},
		DisableKeepAlives: true,
	}, Timeout: 5 * time.Second}
	var fails, oks atomic.Int64
	var errMu sync.Mutex
	var firstErrs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := other.Get(g.url("/api/health"))
			if err != nil || resp.StatusCode != 200 {
				fails.Add(1)
				errMu.Lock()
				if len(firstErrs) < 3 {
					if err != nil {
						firstErrs = append(firstErrs, err.Error())
					} else {
						firstErrs = append(firstErrs, resp.Status)
					}
				}
				errMu.Unlock()
			} else {
				oks.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	g.site.Gateway.JA4.Blocklist = []string{goJA4}
	g.inst.WriteFile("ja4-blocklist.site", gateway.Blocklist(g.site.Gateway.JA4.Blocklist))
	if err := g.inst.Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if fails.Load() != 0 || oks.Load() == 0 {
		t.Errorf("during the reload the unblocked client had %d failures and %d successes; want 0 failures (first: %q)", fails.Load(), oks.Load(), firstErrs)
	}

	st, hdr, body := g.do(t, g.client("http/1.1"), "GET", "/api/blocked-probe", nil, nil)
	if st != 403 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("blocked client: %d %q %s, want 403 JSON", st, hdr.Get("Content-Type"), body)
	}
	if m := mustJSON(t, body); m["error"] != "forbidden" {
		t.Errorf("403 body %s", body)
	}
	logged, _, tag := g.requestLog(t, "/api/blocked-probe")
	if logged != goJA4 || tag != "ja4-blocked" {
		t.Errorf("blocked request logged with JA4 %q tag %q, want %s and ja4-blocked", logged, tag, goJA4)
	}
	if resp, err := other.Get(g.url("/api/health")); err != nil || resp.StatusCode != 200 {
		t.Errorf("a client with another fingerprint is blocked too: %v", err)
	}
}

// TestRateLimits: the global per-IP limit and the login limit, which counts
// trivially varied spellings of the login path, answer 429 JSON with
// Retry-After.
func TestRateLimits(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
		v.Gateway.RateLimits.Global = values.Limit{Requests: 40, PeriodSeconds: 10}
		v.Gateway.RateLimits.Login = values.LoginLimit{Limit: values.Limit{Requests: 3, PeriodSeconds: 60}, Paths: []string{"/api/v1/auth/login"}}
	})
	c := g.client("http/1.1")
	variants := []string{"/api/v1/auth/login", "/api//v1/auth/login", "/api/v1/auth/login/", "/api/v1/Auth/Login", "/api/v1/auth/./login", "/api/v1/auth/login;x=1"}
	for i, p := range variants {
		st, hdr, body := g.do(t, c, "POST", p, map[string]string{"Content-Type": "application/json"}, strings.NewReader(`{}`))
		if i < 3 && st == 429 {
			t.Fatalf("login attempt %d (%s) limited already: %s", i+1, p, body)
		}
		if i >= 3 {
			if st != 429 || hdr.Get("Retry-After") != "60" || mustJSON(t, body)["error"] != "too_many_requests" {
				t.Errorf("login attempt %d as %s: %d Retry-After %q %s; want 429 JSON with Retry-After 60", i+1, p, st, hdr.Get("Retry-After"), body)
			}
		}
	}
	// Other paths are not limited by the login limit...
	if st, _, _ := g.do(t, c, "GET", "/api/v1/items", nil, nil); st != 200 {
		t.Fatalf("non-login path after login limit: %d", st)
	}
	// ...but by the global one.
	limited := 0
	for i := 0; i < 45; i++ {
		st, hdr, body := g.do(t, c, "GET", "/api/v1/items", nil, nil)
		if st == 429 {
			limited++
			if hdr.Get("Retry-After") != "10" || mustJSON(t, body)["error"] != "too_many_requests" {
				t.Errorf("global 429 without Retry-After 10 or JSON: %q %s", hdr.Get("Retry-After"), body)
			}
		}
	}
	// 6 logins + 1 + 45 = 52 requests in the window, limit 40.
	if limited < 10 || limited > 13 {
		t.Errorf("%d of 45 requests were limited; with a limit of 40 per 10 s after 7 earlier requests, want 12", limited)
	}
	_, _, tag := g.requestLog(t, "/api/v1/Auth/Login")
	if tag != "login-rate-limited" {
		t.Errorf("limited login logged with tag %q", tag)
	}
}

// TestAPIProtection: prefix, methods, Bearer tokens, body size and
// transfer codings, all answered with JSON.
func TestAPIProtection(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
		v.Gateway.API.MaxBodyBytes = 1024
		v.Gateway.API.Methods = []string{"GET", "POST"}
		v.Gateway.API.PublicPaths = []string{"/api/health", "/api/v1/auth/login"}
	})
	c := g.client("http/1.1")
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		want               int
		errKey             string
	}{
		{"outside prefix", "GET", "/admin", nil, "", 404, "not_found"},
		{"method not allowed", "DELETE", "/api/v1/items/1", nil, "", 405, "method_not_allowed"},
		{"no token", "GET", "/api/v1/items", map[string]string{"Authorization": ""}, "", 401, "unauthorized"},
		{"basic auth is not a bearer token", "GET", "/api/v1/items", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, "", 401, "unauthorized"},
		{"public path without token", "GET", "/api/health", map[string]string{"Authorization": ""}, "", 200, ""},
		{"public login without token", "POST", "/api/v1/auth/login", map[string]string{"Authorization": ""}, "{}", 200, ""},
		{"token", "GET", "/api/v1/items", nil, "", 200, ""},
		{"body at limit", "POST", "/api/v1/items", nil, strings.Repeat("a", 1024), 200, ""},
		{"body over limit", "POST", "/api/v1/items", nil, strings.Repeat("a", 1025), 413, "payload_too_large"},
	}
	for _, tc := range cases {
		var body *strings.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		var st int
		var hdr http.Header
		var b []byte
		if body != nil {
			st, hdr, b = g.do(t, c, tc.method, tc.path, tc.hdr, body)
		} else {
			st, hdr, b = g.do(t, c, tc.method, tc.path, tc.hdr, nil)
		}
		if st != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, st, tc.want, b)
			continue
		}
		if tc.errKey != "" {
			if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || mustJSON(t, b)["error"] != tc.errKey {
				t.Errorf("%s: body %q (%s), want JSON error %q", tc.name, b, hdr.Get("Content-Type"), tc.errKey)
			}
		}
		if tc.want == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate: Bearer", tc.name)
		}
	}

	// Transfer codings, sent raw: only a plain announced length passes.
	raw := func(req string) string {
		conn, err := tls.Dial("tcp", g.https, &tls.Config{RootCAs: g.pool, ServerName: serverName, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(conn, req)
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		return string(buf[:n])
	}
	head := "POST /api/v1/items HTTP/1.1\r\nHost: " + serverName + "\r\nAuthorization: Bearer t\r\n"
	for _, tc := range []struct {
		name, req, want string
	}{
		{"chunked", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", " 411 "},
		// HAProxy itself refuses a coding list with 422 before any rule.
		{"gzip coding", head + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", " 422 "},
		{"identity coding", head + "Transfer-Encoding: identity\r\n\r\nhello", " 400 "},
		{"chunked and length", head + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", " 411 "},
		{"length", head + "Content-Length: 5\r\n\r\nhello", " 200 "},
	} {
		before := b1.requests.Load()
		got := raw(tc.req)
		if !strings.Contains(strings.SplitN(got, "\r\n", 2)[0], tc.want) {
			t.Errorf("%s: got %q, want status%s", tc.name, strings.SplitN(got, "\r\n", 2)[0], tc.want)
		}
		if tc.want != " 200 " && b1.requests.Load() != before {
			t.Errorf("%s: the refused request reached the backend", tc.name)
		}
	}
}

// TestManagementListener: stats and Prometheus metrics answer only to the
// management network and only with the seed's credentials.
func TestManagementListener(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
		v.Management = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	get := func(src, path, user, pass string) (int, string) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
		req, _ := http.NewRequest("GET", "http://"+g.mgmt+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.String()
	}
	u, p := g.sec.StatsUser, g.sec.StatsPassword
	if st, body := get("127.0.0.2", "/metrics", u, p); st != 200 || !strings.Contains(body, "haproxy_frontend_http_requests_total") {
		t.Errorf("metrics from the management network: %d, %.200s", st, body)
	}
	if st, body := get("127.0.0.2", "/stats;csv", u, p); st != 200 || !strings.Contains(body, "be_nodes,node1") {
		t.Errorf("stats from the management network: %d, %.200s", st, body)
	}
	if st, _ := get("127.0.0.2", "/metrics", "", ""); st != 401 {
		t.Errorf("metrics without credentials: %d, want 401", st)
	}
	if st, _ := get("127.0.0.2", "/metrics", u, "wrong-password-123"); st != 401 {
		t.Errorf("metrics with a wrong password: %d, want 401", st)
	}
	if st, _ := get("127.0.0.3", "/metrics", u, p); st != 403 {
		t.Errorf("metrics from outside the management network: %d, want 403", st)
	}
}

// TestRenderedConfigsValid: the example site's and every valid corpus
// site's rendered configuration passes haproxy -c in the role's tree, with
// the appliance's own listeners and options.
func TestRenderedConfigsValid(t *testing.T) {
	root := haproxytest.Rootfs(t)
	sites := map[string]string{}
	ex := t.TempDir()
	for _, f := range []string{"bank1.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "sites", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(ex, f), b, 0o644)
		if _, err := seeds.Keygen(filepath.Join(ex, f), time.Now()); err != nil {
			t.Fatal(err)
		}
		sites["example/"+f] = filepath.Join(ex, f)
	}
	corpus := seedstest.Corpus(t, filepath.Join("..", "..", "seeds", "testdata", "good"))
	m, _ := filepath.Glob(filepath.Join(corpus, "*.yaml"))
	for _, p := range m {
		if !strings.HasPrefix(filepath.Base(p), "secrets") {
			sites["corpus/"+filepath.Base(p)] = p
		}
	}
	if len(sites) < 4 {
		t.Fatalf("only %d sites to check", len(sites))
	}
	for name, path := range sites {
		s, err := seeds.Load(path, seeds.LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, vm := range s.ByRole(values.RoleGateway) {
			v, sec := s.Values(vm)
			dir := filepath.Join("/run/cfgcheck", strings.NewReplacer("/", "-", ".", "-").Replace(name), vm.Name)
			o := gateway.AppliancePaths()
			o.ConfigFile = dir + "/haproxy.cfg"
			o.ErrorDir = dir + "/errors"
			o.BlocklistSite = dir + "/ja4-blocklist.site"
			o.BlocklistDefault = dir + "/ja4-blocklist.default"
			o.CertFile = dir + "/server.pem"
			o.BackendCAFile = dir + "/backend-ca.pem"
			o.LuaFile = dir + "/ja4.lua"
			o.StatsSocket = dir + "/admin.sock"
			o.TermSocket = "unix@" + dir + "/tls.sock"
			files, err := gateway.Render(v, sec.(*values.GatewaySecrets), o)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, vm.Name, err)
			}
			luaSrc, _ := lua.Files.ReadFile("ja4.lua")
			files = append(files,
				gateway.File{Path: o.BlocklistDefault, Mode: 0o644, Data: gateway.DefaultBlocklist()},
				gateway.File{Path: o.CertFile, Mode: 0o600, Data: append(append([]byte{}, s.TLS.CertPEM...), s.TLS.KeyPEM...)},
				gateway.File{Path: o.BackendCAFile, Mode: 0o644, Data: s.TLS.BackendCAPEM},
				gateway.File{Path: o.LuaFile, Mode: 0o644, Data: luaSrc})
			for _, f := range files {
				hp := filepath.Join(root, f.Path)
				os.MkdirAll(filepath.Dir(hp), 0o755)
				if err := os.WriteFile(hp, f.Data, os.FileMode(f.Mode)); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { os.RemoveAll(filepath.Join(root, dir)) })
			if err := haproxytest.Check(root, o.ConfigFile); err != nil {
				t.Errorf("%s/%s: %v", name, vm.Name, err)
			}
		}
	}
}
