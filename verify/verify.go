package verify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/applbuild/applbuild/roles/values"
	"github.com/applbuild/applbuild/verify/qemu"
)

// Markers the appliance agent prints on the console (cmd/appliance).
const (
	ReadyMarker  = "APPLIANCE-READY"
	FailedMarker = "APPLIANCE-FAILED"
)

// Options for one verification boot.
type Options struct {
	Image string
	Seed  string
	// Accel is auto, kvm or tcg.
	Accel string
	// WorkDir keeps the console log and overlay; a temporary folder when
	// empty.
	WorkDir string
	// Timeout bounds the whole boot; the harness's per-accelerator
	// default when zero.
	Timeout time.Duration
	// ServeTimeout bounds the wait for the first 200 after the agent is
	// ready (health checks need a few seconds to mark backends up).
	ServeTimeout time.Duration
	// ExtraForwards are more ports to forward, e.g. 22.
	ExtraForwards []int
}

// Probe is one check made against the running VM.
type Probe struct {
	Name   string
	OK     bool
	Detail string
}

// Milestone is a moment of the boot, counted from QEMU's start.
type Milestone struct {
	Name string
	At   time.Duration
}

// Report is the outcome of a verification boot.
type Report struct {
	Seed       *Seed
	Accel      string
	CPUModel   string
	Attempts   int
	Milestones []Milestone
	Probes     []Probe
	SerialLog  string
	// HTTPS is the host address forwarded to the guest's 443; Forwards
	// maps the other guest ports.
	HTTPS    string
	Forwards map[int]string
	// VM is the running guest; the caller stops it.
	VM *qemu.VM
}

// OK reports whether every probe passed.
func (r *Report) OK() bool {
	for _, p := range r.Probes {
		if !p.OK {
			return false
		}
	}
	return len(r.Probes) > 0
}

// String renders the report for a person.
func (r *Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s: %s (%s, role %s) booted with %s (%s), %d attempt(s)\n", verdict, r.Seed.Hostname, r.Seed.InstanceID, r.Seed.Site.Role, r.Accel, r.CPUModel, r.Attempts)
	for _, m := range r.Milestones {
		fmt.Fprintf(&b, "  %-12s %7.1fs\n", m.Name, m.At.Seconds())
	}
	for _, p := range r.Probes {
		mark := "ok  "
		if !p.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  [%s] %s: %s\n", mark, p.Name, p.Detail)
	}
	fmt.Fprintf(&b, "  console: %s\n", r.SerialLog)
	return b.String()
}

// Boot boots the image with the seed and runs the role's probes. The VM is
// left running in the report (stop it with r.VM.Stop()); on error it is
// stopped.
func Boot(ctx context.Context, o Options) (*Report, error) {
	seed, err := ReadSeed(o.Seed)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Image); err != nil {
		return nil, err
	}
	if o.WorkDir != "" {
		if err := os.MkdirAll(o.WorkDir, 0o700); err != nil {
			return nil, err
		}
	}
	if o.ServeTimeout == 0 {
		o.ServeTimeout = 90 * time.Second
	}
	guestPort := 443
	switch {
	case seed.Site.Gateway != nil && seed.Site.Gateway.Mode == values.ModeKubernetesAPI:
		guestPort = seed.Site.Gateway.KubernetesAPI.Port
	case seed.Site.Node != nil:
		guestPort = seed.Site.Node.IngressPort
	}
	r := &Report{Seed: seed, Forwards: map[int]string{}}
	var fwds []qemu.Forward
	for _, gp := range append([]int{guestPort}, o.ExtraForwards...) {
		hp, err := qemu.FreeLocalPort()
		if err != nil {
			return nil, err
		}
		fwds = append(fwds, qemu.Forward{HostPort: hp, GuestPort: gp})
		r.Forwards[gp] = fmt.Sprintf("127.0.0.1:%d", hp)
	}
	r.HTTPS = r.Forwards[guestPort]
	vm, err := qemu.Boot(ctx, qemu.BootOptions{
		Disk: o.Image, SeedISO: o.Seed, Accel: o.Accel, Snapshot: true,
		HostForwards: fwds, ReadyMarker: "APPLIANCE-", WorkDir: o.WorkDir, Timeout: o.Timeout,
		Network: guestNetwork(seed),
	})
	if err != nil {
		return nil, err
	}
	r.VM = vm
	r.Accel, r.CPUModel, r.Attempts, r.SerialLog = vm.Accel, vm.CPUModel, len(vm.Attempts), vm.SerialLog
	for _, want := range []struct{ event, name string }{
		{qemu.EventBootloader, "firmware"}, {qemu.EventKernel, "kernel"}, {qemu.EventSystemd, "systemd"},
		{qemu.EventCloudInit + ":init-local", "cloud-init"}, {qemu.EventReady, "agent"},
	} {
		for _, ev := range vm.Events() {
			if ev.Name == want.event {
				r.Milestones = append(r.Milestones, Milestone{want.name, ev.At})
				break
			}
		}
	}
	console, _ := os.ReadFile(vm.SerialLog)
	ready := strings.Contains(string(console), ReadyMarker)
	r.add("agent", ready, markerLine(console))
	switch {
	case seed.Site.Role == values.RoleGateway && ready:
		r.gatewayProbes(ctx, seed, vm.Started, o.ServeTimeout)
	case seed.Site.Role == values.RoleNode && ready:
		r.nodeProbes(ctx, seed, vm.Started, o.ServeTimeout)
	}
	// The login prompt names the host; give it a moment after the agent.
	loginCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	_, lerr := vm.WaitEvent(loginCtx, qemu.EventLogin)
	cancel()
	console, _ = os.ReadFile(vm.SerialLog)
	r.add("hostname", lerr == nil && bytes.Contains(console, []byte(seed.Hostname+" login:")), fmt.Sprintf("console login prompt for %q", seed.Hostname))
	failed := failedUnits.FindAll(cleanConsole(console), -1)
	r.add("units", len(failed) == 0, fmt.Sprintf("%d failed units on the console %s", len(failed), strings.Join(toStrings(failed), "; ")))
	return r, nil
}

var failedUnits = regexp.MustCompile(`\[FAILED\][^\n]*|Failed to start [^\n]*`)

func toStrings(bs [][]byte) []string {
	var out []string
	for _, b := range bs {
		out = append(out, strings.TrimSpace(string(b)))
	}
	return out
}

func markerLine(console []byte) string {
	for _, l := range strings.Split(string(cleanConsole(console)), "\n") {
		if i := strings.Index(l, "APPLIANCE-"); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return "no APPLIANCE- marker on the console"
}

func (r *Report) add(name string, ok bool, detail string) {
	r.Probes = append(r.Probes, Probe{Name: name, OK: ok, Detail: detail})
}

// gatewayProbes: the site's certificate on HTTPS, and the first 200 of the
// health path through HAProxy to a backend.
func (r *Report) gatewayProbes(ctx context.Context, seed *Seed, started time.Time, serveTimeout time.Duration) {
	g := seed.Site.Gateway
	if g.Mode == values.ModeKubernetesAPI {
		c, err := net.DialTimeout("tcp", r.HTTPS, 5*time.Second)
		if err == nil {
			c.Close()
		}
		r.add("kubernetes-api", err == nil, "TCP passthrough listener on "+r.HTTPS)
		return
	}
	sni := g.ServerNames[0]
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(seed.CertPEM)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", r.HTTPS, &tls.Config{ServerName: sni, RootCAs: pool})
	if err != nil {
		r.add("certificate", false, fmt.Sprintf("TLS to %s as %s: %v", r.HTTPS, sni, err))
	} else {
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		r.add("certificate", true, fmt.Sprintf("the seed's certificate for %s (expires %s)", sni, leaf.NotAfter.Format(time.DateOnly)))
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: sni, RootCAs: pool},
		DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, n, r.HTTPS)
		},
		DisableKeepAlives: true,
	}}
	if _, err := firstOK(ctx, client, "https://"+sni+g.API.HealthPath, serveTimeout); err != nil {
		r.add("first 200", false, fmt.Sprintf("GET %s: %v; are the seed's backends reachable from the VM?", g.API.HealthPath, err))
		return
	}
	r.Milestones = append(r.Milestones, Milestone{"first 200", time.Since(started)})
	r.add("first 200", true, fmt.Sprintf("GET %s through a backend", g.API.HealthPath))
}

// nodeProbes asks APIServer2's health path through Traefik on the node's
// ingress port, as the gateway's health checks do. The node presents
// Traefik's own certificate (the seed carries none for nodes), so the
// probe checks the answer, not the certificate. The node's firewall admits
// the ingress port only from the gateways and the management networks: the
// forwarded connection arrives from the site router's address, so the
// seed's site must list a management network holding it.
func (r *Report) nodeProbes(ctx context.Context, seed *Seed, started time.Time, serveTimeout time.Duration) {
	path := seed.Site.Node.HealthPath
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}}
	status, err := firstOK(ctx, client, "https://"+r.HTTPS+path, serveTimeout)
	if err != nil {
		r.add("first 200", false, fmt.Sprintf("GET %s through Traefik on the ingress port: %v", path, err))
		return
	}
	r.Milestones = append(r.Milestones, Milestone{"first 200", time.Since(started)})
	r.add("first 200", true, fmt.Sprintf("GET %s through Traefik answered %s", path, status))
}

// firstOK polls url until it answers 200 or wait runs out.
func firstOK(ctx context.Context, client *http.Client, url string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	last := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return resp.Status, nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("no 200 in %s (last: %s)", wait, last)
		}
		time.Sleep(time.Second)
	}
}

// guestNetwork mirrors the seed's site network in QEMU's user network.
func guestNetwork(seed *Seed) *qemu.UserNetwork {
	n := seed.Site.Network
	un := &qemu.UserNetwork{Prefix: n.Address.Masked(), Router: n.Gateway, GuestIP: n.Address.Addr(), MAC: seed.MAC}
	if len(n.DNS) > 0 {
		un.DNS = n.DNS[0]
	}
	return un
}

// cleanConsole strips terminal escapes from a console log, line by line.
func cleanConsole(b []byte) []byte {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		lines[i] = qemu.CleanLine(l)
	}
	return []byte(strings.Join(lines, "\n"))
}
