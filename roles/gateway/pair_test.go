package gateway_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/gateway/lua"
	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/verify/haproxytest"
	"github.com/applbuild/applbuild/verify/netns"
	"github.com/applbuild/applbuild/verify/testenv"
)

// The pair's network exists only inside the namespaces the test creates.
var (
	pairVIP     = netip.MustParseAddr("10.231.0.100")
	pairClient  = netip.MustParsePrefix("10.231.0.2/24") // the client, and the node behind the gateways
	pairGWAddrs = []netip.Prefix{netip.MustParsePrefix("10.231.0.11/24"), netip.MustParsePrefix("10.231.0.12/24")}
)

const (
	pairNodePort = 8443
	pairRouterID = 51
	// failoverLimit is how soon after HAProxy dies on the master the VIP
	// must serve again from the backup.
	failoverLimit = 3 * time.Second
)

// treeProcess is a program run from the gateway test tree, chrooted, inside
// a network namespace, in its own process group.
type treeProcess struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *treeProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *treeProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startInTree starts script (sh -c, with $1 the tree) in ns. The process
// group is killed when the test ends; its output is shown if the test
// failed.
func startInTree(t *testing.T, ns *netns.Namespace, name, tree, script string, env []string) *treeProcess {
	t.Helper()
	p := &treeProcess{name: name, done: make(chan struct{})}
	p.cmd = ns.Command("sh", "-c", script, "sh", tree)
	p.cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	// Pdeathsig: a test binary killed by its timeout must not leave the
	// program running. The signal follows the thread that started the
	// child, not the process, so that thread is held until the child ends.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := p.cmd.Start()
		started <- err
		if err == nil {
			p.cmd.Wait()
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s in %s: %v", name, ns.Name, err)
	}
	t.Cleanup(func() {
		p.kill(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, lastN(p.output(), 40))
		}
	})
	return p
}

// signal sends sig to the whole process group.
func (p *treeProcess) signal(sig syscall.Signal) {
	syscall.Kill(-p.cmd.Process.Pid, sig)
}

// kill signals the whole process group and waits (bounded) for the leader.
func (p *treeProcess) kill(sig syscall.Signal) {
	// A stopped group acts on nothing but SIGKILL until it continues.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// Children (workers, track scripts) that outlived the leader.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

func lastN(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pairGateway is one gateway of the pair: its namespace, HAProxy and
// keepalived.
type pairGateway struct {
	name       string
	ns         *netns.Namespace
	addr       netip.Addr
	haproxy    *treeProcess
	keepalived *treeProcess
}

// startPairGateway renders gateway i of the pair (HAProxy with a wildcard
// HTTPS bind, keepalived with unicast peers and an HTTPS track script) and
// starts both from the tree inside ns.
func startPairGateway(t *testing.T, tree string, site *seeds.Site, siteValues *values.Site, sec *values.GatewaySecrets, i int, ns *netns.Namespace) *pairGateway {
	t.Helper()
	v, gv := *siteValues, *siteValues.Gateway
	v.Gateway = &gv
	self, peer := pairGWAddrs[i], pairGWAddrs[1-i]
	v.VM = fmt.Sprintf("gw%d", i+1)
	v.Network.Address = self
	v.Management = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	v.Gateway.Backends = []values.Backend{{Name: "node1", Address: pairClient.Addr(), Port: pairNodePort}}
	v.Gateway.Pair = &values.Pair{VIP: pairVIP, Peers: []netip.Addr{peer.Addr()}, Priority: 150 - 50*i, RouterID: pairRouterID}

	// The instance directory, inside the tree, as HAProxy sees it.
	id := make([]byte, 4)
	rand.Read(id)
	dir := path.Join("/run", "abt-pair-"+hex.EncodeToString(id))
	host := filepath.Join(tree, dir)
	if err := os.MkdirAll(host, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })

	o := testOptions(t)
	d := "${" + haproxytest.DirEnv + "}"
	o.HTTPSBind = ":443" // the wildcard bind serves the VIP wherever it lands
	o.HTTPBind = ":80"
	o.K8sBind = ":6443"
	o.MgmtBind = "127.0.0.1:8404"
	o.TermSocket = "unix@" + d + "/tls.sock"
	rendered, err := gateway.Render(&v, sec, o)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"server.pem":            append(append([]byte{}, site.TLS.CertPEM...), site.TLS.KeyPEM...),
		"ja4-blocklist.default": gateway.DefaultBlocklist(),
	}
	if files["ja4.lua"], err = lua.Files.ReadFile("ja4.lua"); err != nil {
		t.Fatal(err)
	}
	for _, f := range rendered {
		files[strings.TrimPrefix(f.Path, d+"/")] = f.Data
	}
	// The track script: a TLS handshake and an HTTP answer from this
	// host's HAProxy (any status; / is answered 404 by the gateway itself).
	check := "/usr/bin/curl -sk --max-time 1 -o /dev/null https://127.0.0.1:443/"
	kconf, err := gateway.RenderKeepalived(&v, gateway.KeepalivedOptions{Interface: "eth0", CheckCommand: check})
	if err != nil {
		t.Fatal(err)
	}
	files["keepalived.conf"] = kconf
	for name, data := range files {
		p := filepath.Join(host, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := haproxytest.Check(tree, dir+"/haproxy.cfg"); err != nil {
		t.Fatal(err)
	}

	g := &pairGateway{name: v.VM, ns: ns, addr: self.Addr()}
	env := []string{haproxytest.DirEnv + "=" + dir}
	g.haproxy = startInTree(t, ns, v.VM+" haproxy", tree,
		`exec chroot "$1" `+haproxytest.HAProxy+` -W -db -f `+dir+`/haproxy.cfg`, env)
	// keepalived needs /proc and the namespace's /sys inside the tree. They
	// are mounted in the private mount namespace "ip netns exec" made, so
	// they are gone when keepalived exits and nobody else sees them.
	g.keepalived = startInTree(t, ns, v.VM+" keepalived", tree,
		`mount -t proc proc "$1/proc" && mount -t sysfs sysfs "$1/sys" && `+
			`exec chroot "$1" /usr/sbin/keepalived --dont-fork --log-console --log-detail --vrrp `+
			`-f `+dir+`/keepalived.conf -p `+dir+`/keepalived.pid -r `+dir+`/vrrp.pid`, env)
	return g
}

// holdsVIP reports whether the gateway holds the VIP on eth0.
func (g *pairGateway) holdsVIP(t testing.TB) bool {
	t.Helper()
	ok, err := g.ns.HasAddress("eth0", pairVIP)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// startPairNode starts the node both gateways balance to, inside ns. It
// answers every path with the address the request came from, which is the
// address of the gateway that forwarded it.
func startPairNode(t *testing.T, ns *netns.Namespace) {
	t.Helper()
	ln, err := ns.Listen("tcp", netip.AddrPortFrom(pairClient.Addr(), pairNodePort).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := strings.Cut(r.RemoteAddr, ":")
			io.WriteString(w, "via="+host)
		}),
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t, "node.corp.example.net")}},
		ReadTimeout: 10 * time.Second,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
}

// TestGatewayPairFailover: two gateways in network namespaces, each running
// HAProxy and keepalived (both from the gateway tree, configured by the
// renderers), and a client, all on one bridge. The preferred gateway holds
// the VIP and serves HTTPS on it. When its HAProxy dies, its track script
// (a real HTTPS request to HAProxy) fails, and the VIP serves from the
// backup within failoverLimit. When its HAProxy hangs (stopped, so the
// process exists and the port still accepts connections), the VIP moves
// too, within failoverLimit plus the check's one-second curl timeout: the
// check looks for an answer, not for a process.
func TestGatewayPairFailover(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "sh", "mount", "chroot"} {
		testenv.RequireTool(t, tool)
	}
	tree := haproxytest.Rootfs(t)
	for _, p := range []string{"usr/sbin/keepalived", "usr/bin/curl"} {
		if _, err := os.Stat(filepath.Join(tree, p)); err != nil {
			t.Fatalf("the gateway test tree has no /%s (roles/gateway/role.yaml, profile test): %v", p, err)
		}
	}
	t.Run("haproxy killed", func(t *testing.T) { pairFailover(t, tree, syscall.SIGKILL, failoverLimit) })
	t.Run("haproxy hung", func(t *testing.T) { pairFailover(t, tree, syscall.SIGSTOP, failoverLimit+time.Second) })
}

// pairFailover builds the pair's network, waits for the preferred gateway
// to serve on the VIP, sends sig to its HAProxy, and asserts that the VIP
// serves from the backup within limit.
func pairFailover(t *testing.T, tree string, sig syscall.Signal, limit time.Duration) {

	// One site, one certificate: both gateways serve the same one.
	siteValues, sec, site := testSite(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(site.TLS.CertPEM)

	lan := netns.NewBridge(t, "lan")
	client := netns.New(t, "cli")
	lan.Attach(t, client, "eth0", pairClient)
	startPairNode(t, client)
	var gws []*pairGateway
	for i := range pairGWAddrs {
		ns := netns.New(t, fmt.Sprintf("gw%d", i+1))
		lan.Attach(t, ns, "eth0", pairGWAddrs[i])
		gws = append(gws, startPairGateway(t, tree, site, siteValues, sec, i, ns))
	}
	master, backup := gws[0], gws[1]

	c := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			DialContext:       client.DialContext,
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: serverName},
			DisableKeepAlives: true, // every request finds the VIP afresh
		},
	}
	get := func() (string, error) {
		req, _ := http.NewRequest("GET", "https://"+netip.AddrPortFrom(pairVIP, 443).String()+"/api/v1/pair", nil)
		req.Host = serverName
		req.Header.Set("Authorization", "Bearer pair-token")
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), nil
	}

	// Start-up: both start as BACKUP; the preferred one takes the VIP once
	// no advertisement came for three intervals, and serves through it.
	deadline := time.Now().Add(20 * time.Second)
	var body string
	var err error
	for {
		if master.holdsVIP(t) && !backup.holdsVIP(t) {
			if body, err = get(); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: %s holds the VIP %v, %s %v; last request: %q, %v", master.name, master.holdsVIP(t), backup.name, backup.holdsVIP(t), body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body != "via="+master.addr.String() {
		t.Fatalf("through the VIP before the failure: %q, want the node to see %s", body, master.addr)
	}

	master.haproxy.signal(sig)
	killed := time.Now()
	var took time.Duration
	for attempts := 0; ; attempts++ {
		body, err = get()
		if err == nil {
			took = time.Since(killed)
			break
		}
		if time.Since(killed) > 10*time.Second || attempts > 200 {
			t.Fatalf("the VIP did not serve again within 10s of HAProxy on %s getting %v (%d attempts); last: %v", master.name, sig, attempts, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("VIP served again %s after HAProxy on %s got %v", took.Round(time.Millisecond), master.name, sig)
	if body != "via="+backup.addr.String() {
		t.Errorf("after the failover the node saw %q, want the backup %s", body, backup.addr)
	}
	if took > limit {
		t.Errorf("failover took %s, want under %s", took.Round(time.Millisecond), limit)
	}
	if !backup.holdsVIP(t) || master.holdsVIP(t) {
		t.Errorf("after the failover: %s holds the VIP %v, %s %v; want only the backup", master.name, master.holdsVIP(t), backup.name, backup.holdsVIP(t))
	}
}
