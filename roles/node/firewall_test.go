package node

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/verify/testenv"
)

// TestFirewallHelper is the test binary acting as a listener or a client
// inside a network namespace; it does nothing in a normal test run.
func TestFirewallHelper(t *testing.T) {
	switch os.Getenv("NODE_FW_HELPER") {
	case "listen":
		for _, p := range strings.Split(os.Getenv("NODE_FW_PORTS"), ",") {
			l, err := net.Listen("tcp", ":"+p)
			if err != nil {
				fmt.Println("listen:", err)
				os.Exit(1)
			}
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Write([]byte("ok"))
					c.Close()
				}
			}()
		}
		fmt.Println("ready")
		time.Sleep(60 * time.Second) // killed by the test long before
		os.Exit(0)
	case "dial":
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(os.Getenv("NODE_FW_SRC"))}}
		c, err := d.Dial("tcp", os.Getenv("NODE_FW_DST"))
		if err != nil {
			fmt.Print("blocked")
			os.Exit(0)
		}
		b := make([]byte, 2)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _ := c.Read(b)
		fmt.Print(string(b[:n]))
		os.Exit(0)
	}
}

// TestFirewallAdmitsIngressOnlyFromGatewaysAndManagement loads the rendered
// ruleset with the host's nft into a network namespace and connects to it
// from another one, from a gateway's address, a management address and an
// unlisted address on the same network.
func TestFirewallAdmitsIngressOnlyFromGatewaysAndManagement(t *testing.T) {
	testenv.RequireRoot(t)
	ipPath := testenv.RequireTool(t, "ip")
	testenv.RequireTool(t, "nft")
	s, nodes := testSite(t)
	files, v, _ := renderVM(t, s, nodes[0])
	ruleset := filepath.Join(t.TempDir(), "nftables.conf")
	if err := os.WriteFile(ruleset, files[NftablesFile].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, ipPath, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	srv, cli := "nfw-s"+id, "nfw-c"+id
	run("netns", "add", srv)
	t.Cleanup(func() { exec.Command(ipPath, "netns", "del", srv).Run() })
	run("netns", "add", cli)
	t.Cleanup(func() { exec.Command(ipPath, "netns", "del", cli).Run() })
	run("link", "add", "nfs"+id, "netns", srv, "type", "veth", "peer", "name", "nfc"+id, "netns", cli)

	nodeIP := v.Network.Address.Addr()
	prefix := v.Network.Address.Bits()
	gw := v.Node.TrustedProxies[0]
	mgmt := v.Management[0]
	mgmtNode := mgmt.Addr().Next()
	mgmtClient := mgmtNode.Next()
	stranger := nodeIP.Next().Next().Next()
	for _, a := range v.Node.TrustedProxies {
		if a == stranger {
			t.Fatalf("test address %s is a gateway; pick another", stranger)
		}
	}
	in := func(ns string, args ...string) { run(append([]string{"-n", ns}, args...)...) }
	in(srv, "link", "set", "lo", "up")
	in(cli, "link", "set", "lo", "up")
	in(srv, "addr", "add", fmt.Sprintf("%s/%d", nodeIP, prefix), "dev", "nfs"+id)
	in(srv, "addr", "add", fmt.Sprintf("%s/%d", mgmtNode, mgmt.Bits()), "dev", "nfs"+id)
	in(srv, "link", "set", "nfs"+id, "up")
	for _, a := range []string{fmt.Sprintf("%s/%d", gw, prefix), fmt.Sprintf("%s/%d", stranger, prefix), fmt.Sprintf("%s/%d", mgmtClient, mgmt.Bits())} {
		in(cli, "addr", "add", a, "nodad", "dev", "nfc"+id)
	}
	in(cli, "link", "set", "nfc"+id, "up")
	out, err := exec.CommandContext(ctx, ipPath, "netns", "exec", srv, "nft", "-f", ruleset).CombinedOutput()
	if err != nil {
		t.Fatalf("nft -f rendered ruleset: %v: %s", err, out)
	}

	port := fmt.Sprint(v.Node.IngressPort)
	listener := exec.CommandContext(ctx, ipPath, "netns", "exec", srv, os.Args[0], "-test.run=^TestFirewallHelper$")
	listener.Env = append(os.Environ(), "NODE_FW_HELPER=listen", "NODE_FW_PORTS="+port+",22")
	var lout bytes.Buffer
	listener.Stdout = &lout
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Process.Kill(); listener.Wait() })
	for i := 0; i < 50 && !strings.Contains(lout.String(), "ready"); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(lout.String(), "ready") {
		t.Fatalf("listener did not start: %s", lout.String())
	}
	dial := func(src, dst string) string {
		c := exec.CommandContext(ctx, ipPath, "netns", "exec", cli, os.Args[0], "-test.run=^TestFirewallHelper$")
		c.Env = append(os.Environ(), "NODE_FW_HELPER=dial", "NODE_FW_SRC="+src, "NODE_FW_DST="+dst)
		out, _ := c.Output()
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	for _, c := range []struct {
		from, to, port, want string
	}{
		{gw.String(), nodeIP.String(), port, "ok"},
		{mgmtClient.String(), nodeIP.String(), port, "ok"},
		{stranger.String(), nodeIP.String(), port, "blocked"},
		{mgmtClient.String(), mgmtNode.String(), "22", "ok"},
		{gw.String(), nodeIP.String(), "22", "blocked"},
		{stranger.String(), nodeIP.String(), "22", "blocked"},
	} {
		got := dial(c.from, net.JoinHostPort(c.to, c.port))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s -> %s:%s: %q, want %s", c.from, c.to, c.port, got, c.want)
		} else {
			t.Logf("%s -> %s:%s: %s", c.from, c.to, c.port, c.want)
		}
	}
}

// TestFirewallAcceptsOverlappingSources: a site whose management network
// holds the gateways' addresses (a small site on one network) and lists a
// network inside another renders a ruleset nft accepts, and the broader
// network is what admits them. nft refuses overlapping set elements, and
// a node that cannot load its firewall never comes up.
func TestFirewallAcceptsOverlappingSources(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "nft")
	s, nodes := testSite(t)
	v, sec := s.Values(nodes[0])
	site := v.Network.Address.Masked()
	v.Management = append(v.Management, site, netip.PrefixFrom(v.Node.TrustedProxies[0], 28).Masked(), v.Management[0])
	files, err := Render(v, sec.(*values.NodeSecrets), testImages)
	if err != nil {
		t.Fatal(err)
	}
	var ruleset []byte
	for _, f := range files {
		if f.Path == NftablesFile {
			ruleset = f.Data
		}
	}
	p := filepath.Join(t.TempDir(), "nftables.conf")
	if err := os.WriteFile(p, ruleset, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "-c", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("nft -c refuses the ruleset of a site whose management network holds the gateway: %v: %s\n%s", err, out, ruleset)
	}
	if !strings.Contains(string(ruleset), site.String()) || strings.Contains(string(ruleset), v.Node.TrustedProxies[0].String()+",") {
		t.Errorf("the ingress sources do not reduce to the management network %s:\n%s", site, ruleset)
	}
}
