package netns_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/netns"
)

// TestBridgeJoinsNamespaces: two namespaces on one bridge reach each other
// by their addresses, the addresses exist only inside them, and everything
// is gone once the test that made it ends.
func TestBridgeJoinsNamespaces(t *testing.T) {
	var names []string
	t.Run("network", func(t *testing.T) {
		lan := netns.NewBridge(t, "lan")
		a, b := netns.New(t, "a"), netns.New(t, "b")
		names = []string{lan.NS.Name, a.Name, b.Name}
		lan.Attach(t, a, "eth0", netip.MustParsePrefix("10.231.1.1/24"))
		lan.Attach(t, b, "eth0", netip.MustParsePrefix("10.231.1.2/24"))

		ln, err := a.Listen("tcp", "10.231.1.1:9000")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr())
		}()
		// The address is a's, not the host's.
		if l, err := net.Listen("tcp", "10.231.1.1:0"); err == nil {
			l.Close()
			t.Errorf("the host could bind 10.231.1.1: the address leaked out of the namespace")
		}
		c, err := b.DialContext(t.Context(), "tcp", "10.231.1.1:9000")
		if err != nil {
			t.Fatalf("dialing a from b across the bridge: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "hello 10.231.1.2:") {
			t.Errorf("a answered %q (%v), want a greeting to 10.231.1.2", line, err)
		}
		if ok, err := a.HasAddress("eth0", netip.MustParseAddr("10.231.1.1")); !ok || err != nil {
			t.Errorf("HasAddress(eth0, 10.231.1.1) in a = %v, %v; want true", ok, err)
		}
		if ok, _ := b.HasAddress("eth0", netip.MustParseAddr("10.231.1.1")); ok {
			t.Errorf("b reports a's address")
		}
	})
	out, err := netns.IP("netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(out, n) {
			t.Errorf("namespace %s still exists after its test ended:\n%s", n, out)
		}
	}
}
