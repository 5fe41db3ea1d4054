package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/gateway/lua"
	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/verify/haproxytest"
	"github.com/applbuild/applbuild/verify/testenv"
)

// chrootHost validates with the tree's HAProxy and the host's nft, and
// reloads the test's HAProxy instance from the current generation.
type chrootHost struct {
	root    string
	gens    string // in the tree
	inst    *haproxytest.Instance
	reloads atomic.Int64
}

func (h *chrootHost) CheckHAProxy(_ context.Context, cfg string) error {
	return haproxytest.Check(h.root, cfg)
}

func (h *chrootHost) CheckNftables(ctx context.Context, file string) error {
	out, err := exec.CommandContext(ctx, "nft", "-c", "-f", filepath.Join(h.root, file)).CombinedOutput()
	if err != nil {
		return &cmdErr{string(out)}
	}
	return nil
}

func (h *chrootHost) CheckKeepalived(context.Context, string) error { return nil }

func (h *chrootHost) Reload(context.Context, bool) error {
	h.reloads.Add(1)
	if h.inst == nil {
		return nil
	}
	cfg, err := os.ReadFile(filepath.Join(h.root, h.gens, "current", "haproxy.cfg"))
	if err != nil {
		return err
	}
	h.inst.WriteFile(haproxytest.ConfigFile, cfg)
	return h.inst.Reload()
}

type cmdErr struct{ out string }

func (e *cmdErr) Error() string { return e.out }

// applyFixture lays out /etc/appliance and the image's files inside the
// tree, as cloud-init and the image would on an appliance.
type applyFixture struct {
	root, base string // base: a private folder in the tree
	opts       gateway.ApplyOptions
	host       *chrootHost
	site       *values.Site
	sec        *values.GatewaySecrets
	https      string
	certPEM    []byte
}

func newApplyFixture(t *testing.T, backends []*backend) *applyFixture {
	testenv.RequireTool(t, "nft")
	root := haproxytest.Rootfs(t)
	v, sec, s := testSite(t)
	v.Gateway.Backends = nil
	for _, b := range backends {
		v.Gateway.Backends = append(v.Gateway.Backends, values.Backend{Name: b.name, Address: b.addr.Addr(), Port: int(b.addr.Port())})
	}
	base := "/run/applytest-" + strings.ReplaceAll(t.Name(), "/", "-")
	t.Cleanup(func() { os.RemoveAll(filepath.Join(root, base)) })
	os.RemoveAll(filepath.Join(root, base))
	p := testOptions(t)
	p.CertFile = base + "/etc/appliance/tls/server.pem"
	p.BlocklistDefault = base + "/usr/share/appliance/ja4-blocklist.default"
	p.LuaFile = base + "/usr/share/appliance/lua/ja4.lua"
	p.StatsSocket = base + "/admin.sock"
	p.TermSocket = "unix@" + base + "/tls.sock"
	f := &applyFixture{root: root, base: base, site: v, sec: sec, https: p.HTTPSBind, certPEM: s.TLS.CertPEM}
	f.host = &chrootHost{root: root, gens: base + "/gen"}
	f.opts = gateway.ApplyOptions{Root: root, ValuesDir: base + "/etc/appliance", Generations: base + "/gen", Paths: p, Host: f.host}
	luaSrc, _ := lua.Files.ReadFile("ja4.lua")
	f.write(t, p.LuaFile, luaSrc, 0o644)
	f.write(t, p.BlocklistDefault, gateway.DefaultBlocklist(), 0o644)
	f.write(t, p.CertFile, append(append([]byte{}, s.TLS.CertPEM...), s.TLS.KeyPEM...), 0o600)
	// The load in these tests is far above the default rate limits.
	v.Gateway.RateLimits.Global.Requests = 1000000
	f.writeValues(t)
	return f
}

func (f *applyFixture) write(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	hp := filepath.Join(f.root, p)
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hp, data, mode); err != nil {
		t.Fatal(err)
	}
}

func (f *applyFixture) writeValues(t *testing.T) {
	t.Helper()
	b, _ := values.Marshal(f.site)
	f.write(t, f.opts.ValuesDir+"/"+values.SiteFile, b, 0o644)
	b, _ = values.Marshal(f.sec)
	f.write(t, f.opts.ValuesDir+"/"+values.SecretsFile, b, 0o600)
}

func (f *applyFixture) current(t *testing.T) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(f.root, f.opts.Generations, "current"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestApplyReloadsWithoutFailedRequests runs `appliance apply`'s code path
// three times with changed values while clients keep sending requests, and
// counts failures: there must be none.
func TestApplyReloadsWithoutFailedRequests(t *testing.T) {
	b1, b2 := startBackend(t, "node1", 0), startBackend(t, "node2", 0)
	f := newApplyFixture(t, []*backend{b1})
	ctx := context.Background()
	res, err := gateway.Apply(ctx, f.opts)
	if err != nil || !res.Changed {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	cfg, _ := os.ReadFile(filepath.Join(f.root, f.opts.Generations, "current", "haproxy.cfg"))
	f.host.inst = haproxytest.Start(t, f.root, string(cfg), nil)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(keepAlive bool) {
			defer wg.Done()
			pool := f.pool(t)
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: serverName},
				DisableKeepAlives: !keepAlive,
				DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, n, f.https)
				},
			}}
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "https://"+serverName+"/api/v1/items", nil)
				req.Header.Set("Authorization", "Bearer t")
				resp, err := cl.Do(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					if err == nil {
						err = &cmdErr{resp.Status}
					}
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}(w != 0)
	}
	changes := []func(){
		func() { f.site.Gateway.RateLimits.Login.Requests = 50 },
		func() { f.site.Gateway.JA4.Blocklist = []string{"t13d1516h2_8daaf6152771_e5627efa2ab1"} },
		func() {
			f.site.Gateway.Backends = append(f.site.Gateway.Backends, values.Backend{Name: "node2", Address: b2.addr.Addr(), Port: int(b2.addr.Port())})
		},
	}
	gens := map[string]bool{f.current(t): true}
	for i, change := range changes {
		time.Sleep(700 * time.Millisecond)
		change()
		f.writeValues(t)
		res, err := gateway.Apply(ctx, f.opts)
		if err != nil || !res.Changed {
			t.Fatalf("apply %d: %+v %v", i+1, res, err)
		}
		gens[f.current(t)] = true
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across %d reloads (first: %v)", failed.Load(), failed.Load()+ok.Load(), len(changes), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Errorf("only %d requests succeeded; the load did not run", ok.Load())
	}
	if len(gens) != 4 || f.host.reloads.Load() != 4 {
		t.Errorf("%d generations and %d reloads, want 4 and 4", len(gens), f.host.reloads.Load())
	}
	if b2.requests.Load() == 0 {
		t.Error("the backend added by the last apply received no request")
	}
	// Nothing changed: no new generation, no reload.
	res, err = gateway.Apply(ctx, f.opts)
	if err != nil || res.Changed || f.host.reloads.Load() != 4 {
		t.Errorf("an apply with unchanged values: %+v %v, %d reloads", res, err, f.host.reloads.Load())
	}
	// Old generations are pruned, the live one and its predecessor kept.
	entries, _ := os.ReadDir(filepath.Join(f.root, f.opts.Generations))
	dirs := 0
	for _, e := range entries {
		if e.IsDir() {
			dirs++
		}
	}
	if dirs > 3 {
		t.Errorf("%d generation directories kept, want at most 3", dirs)
	}
}

// TestApplyRejectsBadConfigAndKeepsServing: a configuration HAProxy refuses
// is reported with HAProxy's reason and nothing changes.
func TestApplyRejectsBadConfigAndKeepsServing(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	f := newApplyFixture(t, []*backend{b1})
	ctx := context.Background()
	if _, err := gateway.Apply(ctx, f.opts); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(f.root, f.opts.Generations, "current", "haproxy.cfg"))
	f.host.inst = haproxytest.Start(t, f.root, string(cfg), nil)
	live := f.current(t)
	before := f.host.reloads.Load()

	// A certificate file that is not a certificate passes the agent's own
	// checks but not haproxy -c.
	f.write(t, f.opts.Paths.CertFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600)
	f.site.Gateway.RateLimits.Global.Requests++
	f.writeValues(t)
	_, err := gateway.Apply(ctx, f.opts)
	if err == nil || !strings.Contains(err.Error(), "invalid, nothing was changed") || !strings.Contains(err.Error(), "haproxy") {
		t.Fatalf("apply with a broken certificate: %v", err)
	}
	if f.current(t) != live || f.host.reloads.Load() != before {
		t.Error("a rejected apply switched the generation or reloaded")
	}
	entries, _ := os.ReadDir(filepath.Join(f.root, f.opts.Generations))
	if len(entries) != 2 { // the live generation and the current link
		t.Errorf("a rejected apply left files behind: %d entries", len(entries))
	}
	c := (&gw{https: f.https, pool: f.pool(t)}).client("http/1.1")
	if st, _, _ := (&gw{https: f.https}).do(t, c, "GET", "/api/v1/items", nil, nil); st != 200 {
		t.Errorf("after the rejected apply the gateway answers %d", st)
	}
}

func (f *applyFixture) pool(t *testing.T) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(f.certPEM) {
		t.Fatal("no certificate")
	}
	return p
}

// TestFirewallAcceptsNestedManagementNetworks: management networks listed
// one inside another, or twice, render a ruleset nft accepts (it refuses
// overlapping set elements, which would stop the gateway's apply).
func TestFirewallAcceptsNestedManagementNetworks(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "nft")
	v, _, _ := testSite(t)
	m := v.Management[0]
	v.Management = append(v.Management, netip.PrefixFrom(m.Addr(), m.Bits()-8).Masked(), m, netip.MustParsePrefix("fd00:99::/64"), netip.MustParsePrefix("fd00::/16"))
	rules, err := gateway.RenderNftables(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "nftables.conf")
	if err := os.WriteFile(p, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "-c", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("nft -c refuses the gateway's ruleset for nested management networks: %v: %s\n%s", err, out, rules)
	}
}
