package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/gateway/hainfo"
	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/seeds/seedstest"
)

// hainfoReport runs hainfo --json against the gateway's admin stats socket,
// as an operator on the appliance would, and decodes its document.
func hainfoReport(t testing.TB, g *gw) *hainfo.Report {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := hainfo.Main([]string{"--socket", g.inst.SocketPath("admin.sock"), "--json"}, &out, &errb); rc != 0 {
		t.Fatalf("hainfo --json exited %d: %s", rc, errb.String())
	}
	var rep hainfo.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("hainfo --json printed no report: %v: %q", err, out.String())
	}
	return &rep
}

// hainfoTable runs hainfo (table output) for one backend.
func hainfoTable(t testing.TB, g *gw, backend string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := hainfo.Main([]string{"--socket", g.inst.SocketPath("admin.sock"), "--backend", backend}, &out, &errb); rc != 0 {
		t.Fatalf("hainfo exited %d: %s", rc, errb.String())
	}
	return out.String()
}

// serverStatus is the status hainfo reports for a server, "" if not listed.
func serverStatus(rep *hainfo.Report, backend, server string) string {
	for _, b := range rep.Backends {
		if b.Name != backend {
			continue
		}
		for _, s := range b.Servers {
			if s.Name == server {
				return s.Status
			}
		}
	}
	return ""
}

// waitStatus polls hainfo until the server's status is exactly want and
// returns how long that took; it fails the test after limit.
func waitStatus(t testing.TB, g *gw, backend, server, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < limit {
		last = serverStatus(hainfoReport(t, g), backend, server)
		if last == want {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("hainfo shows %s/%s %q after %s, want %q within %s", backend, server, last, time.Since(start).Round(time.Millisecond), want, limit)
	return 0
}

// tableRow returns the table line naming server, "" if there is none.
func tableRow(table, server string) string {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		for _, w := range f {
			if w == server {
				return line
			}
		}
	}
	return ""
}

// loadResult counts what the clients of a load run saw.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string // the first few failures, for the report
}

func (r *loadResult) fail(msg string) {
	r.failed.Add(1)
	r.mu.Lock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, msg)
	}
	r.mu.Unlock()
}

// runLoad sends GETs through the gateway from workers clients, each with
// its own keep-alive connection, pausing pace between requests, until ctx
// ends or max requests have been sent in total.
func runLoad(ctx context.Context, g *gw, workers int, pace time.Duration, max int64) (*loadResult, func()) {
	res := &loadResult{}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := g.client("http/1.1")
			for n := 0; ctx.Err() == nil && sent.Add(1) <= max; n++ {
				req, _ := newGet(g, fmt.Sprintf("/api/v1/load/%d/%d", w, n))
				resp, err := c.Do(req)
				if err != nil {
					res.fail(err.Error())
				} else {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						res.fail(fmt.Sprintf("%d %s", resp.StatusCode, body))
					} else {
						res.ok.Add(1)
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(pace):
				}
			}
		}(w)
	}
	return res, wg.Wait
}

func newGet(g *gw, path string) (*http.Request, error) {
	req, err := http.NewRequest("GET", g.url(path), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer load-token")
	return req, nil
}

// TestBackendFailoverUnderLoad: with steady GET traffic through the gateway,
// one of two backends dies (listener and open connections closed). Clients
// see no error at all: a request sent to the dead node is replayed on the
// other (retries 2, option redispatch 1, retry-on conn-failure
// empty-response ...; GET is idempotent, so even a request the dead node
// had already received is replayed). The budget asserted is therefore zero
// failed GETs. hainfo shows the node DOWN within the check budget, and UP
// again once a backend listens on its port anew, which then takes traffic.
func TestBackendFailoverUnderLoad(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	b2 := startBackend(t, "node2", 0)
	port := int(b2.addr.Port())
	g := startGateway(t, []*backend{b1, b2}, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
		// The load comes from one address; the per-IP limit is not under test.
		v.Gateway.RateLimits.Global.Requests = 1_000_000
	})
	g.waitServers(t, "UP", "node1", "node2")

	// Bounded load: 4 workers, 6 ms apart (at most about 650 requests a
	// second), at most 8000 requests and 20 s.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, wait := runLoad(ctx, g, 4, 6*time.Millisecond, 8000)
	stopLoad := func() { cancel(); wait() }
	defer stopLoad()

	time.Sleep(1500 * time.Millisecond)
	if b1.requests.Load() == 0 || b2.requests.Load() == 0 {
		stopLoad()
		t.Fatalf("before the failure both nodes should serve: node1 %d, node2 %d requests (client errors %v)", b1.requests.Load(), b2.requests.Load(), res.errs)
	}
	b2.stop()
	killed := time.Now()

	// Check budget: the next check comes at most inter (2s) after the kill,
	// the second failure fastinter (500ms) later (fall 2); 1.5s more for
	// scheduling on a busy two-core machine.
	down := waitStatus(t, g, "be_nodes", "node2", "DOWN", 4*time.Second)
	t.Logf("node2 DOWN %s after it died", down.Round(time.Millisecond))
	table := hainfoTable(t, g, "be_nodes")
	if r := tableRow(table, "node1"); !strings.Contains(r, "UP") {
		t.Errorf("hainfo table: node1 row %q, want it UP:\n%s", r, table)
	}
	if r := tableRow(table, "node2"); !strings.Contains(r, "DOWN") {
		t.Errorf("hainfo table: node2 row %q, want it DOWN:\n%s", r, table)
	}
	time.Sleep(time.Second)

	before := b1.requests.Load()
	b2 = startBackend(t, "node2", port)
	restarted := time.Now()
	// Rise budget: the next check comes at most downinter (1s) later, the
	// second success fastinter (500ms) after it (rise 2); plus slack.
	up := waitStatus(t, g, "be_nodes", "node2", "UP", 3*time.Second)
	t.Logf("node2 UP %s after it came back", up.Round(time.Millisecond))
	time.Sleep(time.Second)
	stopLoad()

	t.Logf("load: %d ok, %d failed over %s; node1 %d requests (%d after the restart), new node2 %d", res.ok.Load(), res.failed.Load(), time.Since(killed).Round(time.Millisecond), b1.requests.Load(), b1.requests.Load()-before, b2.requests.Load())
	if n := res.failed.Load(); n != 0 {
		t.Errorf("%d GETs failed during the failover; want 0 (GETs are replayed on the other node). First failures: %q", n, res.errs)
	}
	if res.ok.Load() < 500 {
		t.Errorf("only %d requests succeeded; the load was too light to prove anything", res.ok.Load())
	}
	if b2.requests.Load() == 0 {
		t.Errorf("node2 is UP again since %s but took no request", time.Since(restarted).Round(time.Millisecond))
	}
	table = hainfoTable(t, g, "be_nodes")
	for _, s := range []string{"node1", "node2"} {
		if r := tableRow(table, s); !strings.Contains(r, "UP") {
			t.Errorf("hainfo table at the end: %s row %q, want UP:\n%s", s, r, table)
		}
	}
}

// TestBackendCertificatesVerified runs the example site as an operator
// would set it up (`applbuild keygen` makes the site's node CA and the
// nodes' certificate): the gateway asks each node for
// gateway.backend_tls.server_name by SNI and verifies what it presents
// against the node CA. A backend presenting the nodes' certificate is UP
// and serves; one presenting a certificate for the same name that the CA
// did not sign is DOWN and never sees a request.
func TestBackendCertificatesVerified(t *testing.T) {
	site := seedstest.ExampleSite(t)
	if _, err := seeds.Keygen(site, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := seeds.Load(site, seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := s.Gateway.BackendTLS.ServerName
	if !s.Gateway.BackendTLS.Verify || name == "" || len(s.TLS.NodeCertPEM) == 0 {
		t.Fatalf("the example site does not have the gateway verify the nodes: %+v", s.Gateway.BackendTLS)
	}
	pair, err := tls.X509KeyPair(s.TLS.NodeCertPEM, s.TLS.NodeKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	good := startBackendWithCert(t, "node1", 0, pair)
	rogue := startBackendWithCert(t, "node2", 0, selfSignedCert(t, name))
	g := startGatewayFiles(t, []*backend{good, rogue}, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
		v.Gateway.BackendTLS = s.Gateway.BackendTLS
	}, map[string][]byte{"backend-ca.pem": s.TLS.BackendCAPEM})

	waitStatus(t, g, "be_nodes", "node1", "UP", 15*time.Second)
	waitStatus(t, g, "be_nodes", "node2", "DOWN", 15*time.Second)
	c := g.client("http/1.1")
	for i := 0; i < 10; i++ {
		st, _, body := g.do(t, c, "GET", "/api/v1/echo", nil, nil)
		if st != 200 || !strings.Contains(string(body), `"backend":"node1"`) {
			t.Fatalf("request %d: %d %s; want 200 from node1, the backend with the nodes' certificate", i, st, body)
		}
	}
	if n := rogue.requests.Load(); n != 0 {
		t.Errorf("the backend with a certificate the node CA did not sign got %d requests", n)
	}
	for _, be := range []*backend{good, rogue} {
		be.mu.Lock()
		sni := append([]string(nil), be.sni...)
		be.mu.Unlock()
		if len(sni) == 0 {
			t.Errorf("%s saw no TLS handshake", be.name)
		}
		for _, n := range sni {
			if n != name {
				t.Errorf("%s was asked for %q by SNI; want %q (gateway.backend_tls.server_name)", be.name, n, name)
				break
			}
		}
	}
}
