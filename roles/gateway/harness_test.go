package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
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
)

const serverName = "api.corp.example.net"

// backend is a loopback HTTPS server standing in for a node's Traefik: it
// answers the health path and echoes what it received as JSON.
type backend struct {
	name     string
	addr     netip.AddrPort
	srv      *http.Server
	ln       net.Listener
	requests atomic.Int64
	mu       sync.Mutex
	last     echo
	sni      []string // the server name of every TLS handshake, in order
}

type echo struct {
	Backend   string              `json:"backend"`
	Method    string              `json:"method"`
	Path      string              `json:"path"`
	Header    map[string][]string `json:"header"`
	BodyBytes int                 `json:"body_bytes"`
}

func selfSignedCert(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startBackend starts a backend on 127.0.0.1:port (0: any free port).
func startBackend(t testing.TB, name string, port int) *backend {
	t.Helper()
	return startBackendWithCert(t, name, port, selfSignedCert(t, "node.corp.example.net"))
}

// startBackendWithCert starts a backend that presents cert and records the
// server names clients ask for.
func startBackendWithCert(t testing.TB, name string, port int, cert tls.Certificate) *backend {
	t.Helper()
	b := &backend{name: name}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	b.ln = ln
	b.addr = netip.MustParseAddrPort(ln.Addr().String())
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if r.URL.Path == "/api/health" {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"status":"ok","backend":"`+name+`"}`)
				return
			}
			b.requests.Add(1)
			e := echo{Backend: name, Method: r.Method, Path: r.URL.Path, Header: r.Header, BodyBytes: len(body)}
			b.mu.Lock()
			b.last = e
			b.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(e)
		}),
		TLSConfig: &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			b.mu.Lock()
			b.sni = append(b.sni, hello.ServerName)
			b.mu.Unlock()
			return &cert, nil
		}},
		ReadTimeout: 30 * time.Second,
		ErrorLog:    nil,
	}
	go b.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) stop() { b.srv.Close() }

// gw is a gateway rendered from a test site and running in HAProxy 3.2.
type gw struct {
	inst  *haproxytest.Instance
	root  string
	site  *values.Site
	sec   *values.GatewaySecrets
	opts  gateway.Options
	https string // host:port of the TLS front
	http  string
	mgmt  string
	pool  *x509.CertPool
	files map[string][]byte
}

// testSite loads seeds/testdata/good/basic.yaml (with a fresh PKI) and
// returns gw1's values.
func testSite(t testing.TB) (*values.Site, *values.GatewaySecrets, *seeds.Site) {
	t.Helper()
	dir := seedstest.Corpus(t, filepath.Join("..", "..", "seeds", "testdata", "good"))
	s, err := seeds.Load(filepath.Join(dir, "basic.yaml"), seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vm, _ := s.VM("gw1")
	v, sec := s.Values(vm)
	return v, sec.(*values.GatewaySecrets), s
}

// testOptions puts every file in the harness's instance directory and every
// listener on loopback.
func testOptions(t testing.TB) gateway.Options {
	o := gateway.AppliancePaths()
	d := "${" + haproxytest.DirEnv + "}"
	o.ConfigFile = d + "/haproxy.cfg"
	o.ErrorDir = d + "/errors"
	o.BlocklistDefault = d + "/ja4-blocklist.default"
	o.BlocklistSite = d + "/ja4-blocklist.site"
	o.CertFile = d + "/server.pem"
	o.BackendCAFile = d + "/backend-ca.pem"
	o.LuaFile = d + "/ja4.lua"
	o.StatsSocket = d + "/admin.sock"
	o.TermSocket = "unix@" + d + "/tls.sock"
	o.LogTarget = "stdout"
	o.HTTPBind = fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t))
	o.HTTPSBind = fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t))
	o.K8sBind = fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t))
	o.MgmtBind = fmt.Sprintf("127.0.0.1:%d", haproxytest.FreePort(t))
	o.HTTPRequestTimeout = "2s"
	// The test process may not raise its file limit as a systemd unit can.
	o.MaxConn, o.FrontendMaxConn = 4000, 2000
	return o
}

// startGateway renders the test site's gateway, with backends replaced by
// the given loopback servers and edit applied, and starts it.
func startGateway(t testing.TB, backends []*backend, edit func(*values.Site, *values.GatewaySecrets, *gateway.Options)) *gw {
	t.Helper()
	return startGatewayFiles(t, backends, edit, nil)
}

// startGatewayFiles is startGateway with more files in the instance
// directory, such as backend-ca.pem.
func startGatewayFiles(t testing.TB, backends []*backend, edit func(*values.Site, *values.GatewaySecrets, *gateway.Options), extra map[string][]byte) *gw {
	t.Helper()
	root := haproxytest.Rootfs(t)
	v, sec, s := testSite(t)
	v.Gateway.Backends = nil
	for _, b := range backends {
		v.Gateway.Backends = append(v.Gateway.Backends, values.Backend{Name: b.name, Address: b.addr.Addr(), Port: int(b.addr.Port())})
	}
	v.Management = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	o := testOptions(t)
	if edit != nil {
		edit(v, sec, &o)
	}
	g := &gw{root: root, site: v, sec: sec, opts: o}
	g.https, g.http, g.mgmt = o.HTTPSBind, o.HTTPBind, o.MgmtBind
	g.pool = x509.NewCertPool()
	g.pool.AppendCertsFromPEM(s.TLS.CertPEM)
	g.files = g.render(t)
	g.files["server.pem"] = append(append([]byte{}, s.TLS.CertPEM...), s.TLS.KeyPEM...)
	g.files["ja4-blocklist.default"] = gateway.DefaultBlocklist()
	luaSrc, err := lua.Files.ReadFile("ja4.lua")
	if err != nil {
		t.Fatal(err)
	}
	g.files["ja4.lua"] = luaSrc
	for name, data := range extra {
		g.files[name] = data
	}
	cfg := g.files["haproxy.cfg"]
	delete(g.files, "haproxy.cfg")
	g.inst = haproxytest.Start(t, root, string(cfg), g.files)
	return g
}

// render renders the gateway's files, named relative to the instance dir.
func (g *gw) render(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := gateway.Render(g.site, g.sec, g.opts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	prefix := "${" + haproxytest.DirEnv + "}/"
	for _, f := range files {
		out[strings.TrimPrefix(f.Path, prefix)] = f.Data
	}
	return out
}

// client returns an HTTP client that dials the gateway's TLS front,
// trusting the site certificate, with ALPN protos.
func (g *gw) client(protos ...string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: g.pool, ServerName: serverName, NextProtos: protos},
		ForceAttemptHTTP2: len(protos) > 0 && protos[0] == "h2",
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.https)
		},
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (g *gw) url(path string) string { return "https://" + serverName + path }

// do sends one request with a Bearer token unless noAuth, and returns the
// status, headers and body.
func (g *gw) do(t testing.TB, c *http.Client, method, path string, hdr map[string]string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, g.url(path), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer test-token")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// waitServers waits until HAProxy reports every backend server UP.
func (g *gw) waitServers(t testing.TB, want string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := g.inst.StatsCommand("show stat")
		ok := err == nil
		for _, n := range names {
			if !regexp.MustCompile(`(?m)^be_nodes,` + n + `,(?:[^,]*,){15}` + want + `\b`).MatchString(out) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers %v not %s after 15s:\n%s", names, want, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var logFields = regexp.MustCompile(`\{([^}]*)\} \{([^}]*)\} \{([^}]*)\} "([^"]*)"`)

// requestLog waits for the fe_api log line of a request whose request line
// contains path, and returns its JA4, request id and tag.
func (g *gw) requestLog(t testing.TB, path string) (ja4, rid, tag string) {
	t.Helper()
	line := g.inst.WaitLog(regexp.QuoteMeta(path)+` HTTP/`, 5*time.Second)
	m := logFields.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("log line has no {ja4} {id} {tag} fields: %q", line)
	}
	return m[1], m[2], m[3]
}
