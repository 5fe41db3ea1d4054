// Package netns builds small private networks for tests: network namespaces
// joined by veth pairs to a bridge, all made with iproute2's "ip" and all
// removed when the test ends. Traffic between them never leaves the
// namespaces, so tests can use real addresses (e.g. 10.231.0.0/24), ARP,
// VRRP and wildcard binds without touching the host's network.
//
// A test reads like this:
//
//	lan := netns.NewBridge(t, "lan")         // the bridge, in its own namespace
//	gw := netns.New(t, "gw")                 // a namespace with lo up
//	lan.Attach(t, gw, "eth0", netip.MustParsePrefix("10.231.0.11/24"))
//	cmd := gw.Command("haproxy", "-f", cfg)  // a program inside gw
//	ln, err := gw.Listen("tcp", "10.231.0.11:8443") // a Go listener inside gw
//
// Every "ip" call is bounded by a timeout and logged at debug level.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/applbuild/applbuild/verify/testenv"
)

// ipTimeout bounds one "ip" call; they take milliseconds.
const ipTimeout = 10 * time.Second

// stderrTail is how much of ip's stderr an error quotes.
const stderrTail = 2048

// runDir is where "ip netns add" keeps the namespaces' bind mounts.
const runDir = "/run/netns"

// IP runs "ip args..." once, bounded by a timeout. The command line is
// logged at debug level; an error carries the tail of ip's stderr.
func IP(args ...string) (string, error) {
	logrus.Debugf("run: ip %s", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > stderrTail {
			msg = "..." + msg[len(msg)-stderrTail:]
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (no answer within %s)", err, ipTimeout)
		}
		return stdout.String(), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

func mustIP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := IP(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Namespace is a network namespace made for one test.
type Namespace struct {
	// Name is the namespace's name for "ip netns": the label given to New
	// plus a random suffix, so tests running at the same time never share
	// a namespace.
	Name string
}

// New creates a network namespace with its loopback up and deletes it when
// the test ends. It skips (fails under APPLBUILD_REQUIRE_TOOLS=1) without
// root or ip. label is a short human-readable part of the name.
func New(t testing.TB, label string) *Namespace {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip")
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	n := &Namespace{Name: "abt-" + label + "-" + hex.EncodeToString(id)}
	mustIP(t, "netns", "add", n.Name)
	t.Cleanup(func() {
		// Processes the test started in the namespace are stopped by their
		// own cleanups, registered later and so run first. Deleting the
		// namespace also destroys the veth ends inside it.
		if _, err := IP("netns", "delete", n.Name); err != nil {
			t.Errorf("removing network namespace: %v", err)
		}
	})
	mustIP(t, "-n", n.Name, "link", "set", "lo", "up")
	return n
}

// IP runs "ip -n NAME args..." in the namespace and fails the test on error.
func (n *Namespace) IP(t testing.TB, args ...string) string {
	t.Helper()
	return mustIP(t, append([]string{"-n", n.Name}, args...)...)
}

// Command returns a command that runs name with args inside the namespace
// ("ip netns exec"). ip execs the program, so the command's process is the
// program itself and signals reach it directly. "ip netns exec" also gives
// it a private mount namespace with the namespace's own /sys; mounts the
// program makes there vanish with it.
func (n *Namespace) Command(name string, args ...string) *exec.Cmd {
	logrus.Debugf("run: ip netns exec %s %s %s", n.Name, name, strings.Join(args, " "))
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs fn on an operating system thread that has joined the namespace,
// then moves the thread back. Sockets fn creates belong to the namespace
// and stay there when used from other goroutines.
//
// The thread goes back to the Go scheduler only once it is back in its own
// namespace; if that fails it is left locked, so it ends with the goroutine
// and no other goroutine ever runs in the namespace by accident. Ending
// threads is avoided otherwise: a child started with Pdeathsig from a
// thread that ends is killed.
func (n *Namespace) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening this thread's network namespace: %w", err)
			return
		}
		defer own.Close()
		f, err := os.Open(filepath.Join(runDir, n.Name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening network namespace %s: %w", n.Name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("joining network namespace %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread ends with this goroutine.
			errc <- fmt.Errorf("leaving network namespace %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen is net.Listen inside the namespace.
func (n *Namespace) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// DialContext is net.Dialer.DialContext inside the namespace, usable as an
// http.Transport's DialContext.
func (n *Namespace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Bridge is a Linux bridge in a namespace of its own, the switch of a test
// network.
type Bridge struct {
	NS   *Namespace
	Name string
	port int
}

// NewBridge creates a namespace holding a bridge named "br0", up, and
// removes both when the test ends.
func NewBridge(t testing.TB, label string) *Bridge {
	t.Helper()
	b := &Bridge{NS: New(t, label), Name: "br0"}
	b.NS.IP(t, "link", "add", b.Name, "type", "bridge")
	b.NS.IP(t, "link", "set", b.Name, "up")
	return b
}

// Attach connects ns to the bridge with a veth pair: ifname inside ns,
// holding addr (e.g. 10.231.0.11/24), and a port of the bridge on the other
// end. Both ends are up when it returns.
func (b *Bridge) Attach(t testing.TB, ns *Namespace, ifname string, addr netip.Prefix) {
	t.Helper()
	b.port++
	port := fmt.Sprintf("p%d", b.port)
	b.NS.IP(t, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns.Name)
	b.NS.IP(t, "link", "set", port, "master", b.Name)
	b.NS.IP(t, "link", "set", port, "up")
	ns.IP(t, "addr", "add", addr.String(), "dev", ifname)
	ns.IP(t, "link", "set", ifname, "up")
}

// HasAddress reports whether ifname in the namespace holds addr, e.g. to see
// which host of a VRRP pair holds the virtual address.
func (n *Namespace) HasAddress(ifname string, addr netip.Addr) (bool, error) {
	out, err := IP("-n", n.Name, "-o", "addr", "show", "dev", ifname)
	if err != nil {
		return false, err
	}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr() == addr {
			return true, nil
		}
	}
	return false, nil
}
