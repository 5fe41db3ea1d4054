package verify_test

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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/seeds"
	"github.com/applbuild/applbuild/verify"
	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/testenv"
)

// blockedClient is the TLS client whose JA4 the test seed blocks: TLS 1.2
// only with two ciphers, a fingerprint no other client here has.
func blockedClient() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "api.verify.test", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		NextProtos:   []string{"http/1.1"}}
}

// wireJA4 captures the blocked client's ClientHello on loopback and returns
// its JA4 as the Go reference computes it.
func wireJA4(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	rec, err := ja4.NewRecorder(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	c, err := tls.Dial("tcp", rec.Addr(), blockedClient())
	if err == nil {
		c.Close()
	}
	hellos, err := rec.WaitHellos(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := ja4.Compute(hellos[0])
	if err != nil {
		t.Fatal(err)
	}
	return fp.JA4
}

// echoBackend is the node the gateway in the VM forwards to: an HTTPS
// server on the host's loopback, which the guest reaches at the site's
// router address (QEMU's user network maps it to the host).
func echoBackend(t *testing.T) (port int, seen chan http.Header) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	seen = make(chan http.Header, 100)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/health" {
			select {
			case seen <- r.Header.Clone():
			default:
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "xff": r.Header.Values("X-Forwarded-For")})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, seen
}

const siteTemplate = `site: verify
domain: verify.test
network:
  cidr: 10.0.2.0/24
  gateway: 10.0.2.2
  dns: [10.0.2.3]
management:
  cidrs: [10.0.2.0/24]
ssh:
  authorized_keys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlsHPMCCPdpRZ9kwwuxpRvi0d2Ec92z9jlHZ+y7sjsE ops@verify.test
vms:
  - { name: gwboot, role: gateway, ip: 10.0.2.15, mac: "52:54:00:0a:00:0f" }
gateway:
  server_names: [api.verify.test]
  tls: { certificate: verify/api.crt, key: verify/api.key }
  backends:
    - { name: host, address: 10.0.2.2, port: %d }
  rate_limits:
    global: { requests: %d, period: 10s }
  ja4:
    blocklist: [%s]
secrets: verify/secrets.yaml
`

// writeSeed writes the test site and its seed; rate varies the seed (and
// so its instance-id) between boots.
func writeSeed(t *testing.T, dir string, backendPort, rate int, blocked string) string {
	t.Helper()
	site := filepath.Join(dir, "verify.yaml")
	os.WriteFile(site, []byte(fmt.Sprintf(siteTemplate, backendPort, rate, blocked)), 0o644)
	if _, err := seeds.Keygen(site, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := seeds.Load(site, seeds.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := seeds.Render(s, s.VMs[0])
	if err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, fmt.Sprintf("gwboot-%d.iso", rate))
	if _, err := sd.WriteISO(iso); err != nil {
		t.Fatal(err)
	}
	return iso
}

// baked is the gateway image the tests of this package share: one bake
// per test binary.
var baked struct {
	sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if baked.dir != "" {
		os.RemoveAll(baked.dir)
	}
	os.Exit(code)
}

func bakeGateway(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"mmdebstrap", "qemu-img", "mkfs.ext4", "mkfs.vfat", "mcopy", "sgdisk", "go"} {
		testenv.RequireTool(t, tool)
	}
	baked.Do(func() {
		baked.dir, baked.err = os.MkdirTemp("", "applbuild-verify-")
		if baked.err == nil {
			baked.path, baked.err = bake(t, baked.dir)
		}
	})
	if baked.err != nil {
		t.Fatal(baked.err)
	}
	return baked.path
}

func bake(t *testing.T, out string) (string, error) {
	agent := filepath.Join(out, "appliance")
	cmd := exec.Command("go", "build", "-o", agent, "github.com/applbuild/applbuild/cmd/appliance")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the agent: %v\n%s", err, b)
	}
	c := &builder.Config{Role: "gateway", Formats: []string{"qcow2", "raw"}, OutputDir: out, AgentPath: agent, Version: "boottest"}
	if err := c.Prepare(); err != nil {
		return "", err
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	res, err := builder.Run(context.Background(), c, log)
	if err != nil {
		return "", err
	}
	return res.Outputs[0].Path, nil
}

// rawOf is the raw image baked beside the qcow2.
func rawOf(qcow2 string) string { return strings.TrimSuffix(qcow2, ".qcow2") + ".raw" }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func sshHostKeys(t *testing.T, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	for i := 0; i < 20; i++ {
		out, err := exec.Command("ssh-keyscan", "-T", "5", "-p", port, host).Output()
		if err == nil && strings.Contains(string(out), "ssh-ed25519") {
			return string(out)
		}
		time.Sleep(3 * time.Second)
	}
	t.Fatalf("ssh-keyscan %s found no host key", addr)
	return ""
}

var machineIDRE = regexp.MustCompile(`APPLIANCE-READY .*machine-id=([0-9a-f]{32})`)

// TestGatewayImageBootsAndServes bakes the gateway image, boots it under
// QEMU with a seed whose backend is a server on this host, and checks what
// a person would: the hostname, the site certificate on HTTPS, a request
// reaching the backend with a sanitised X-Forwarded-For, a JA4-blocked
// client refused, no failed units. A second boot of the same image with a
// seed that has another instance-id gets its own SSH host keys and
// machine-id.
func TestGatewayImageBootsAndServes(t *testing.T) {
	testenv.Short(t, "bakes an image and boots it twice under QEMU")
	for _, tool := range []string{"qemu-system-x86_64", "ssh-keyscan"} {
		testenv.RequireTool(t, tool)
	}
	image := bakeGateway(t)
	port, seen := echoBackend(t)
	blocked := wireJA4(t)
	dir := t.TempDir()
	iso1 := writeSeed(t, dir, port, 300, blocked)

	ctx := context.Background()
	r, err := verify.Boot(ctx, verify.Options{Image: image, Seed: iso1, WorkDir: filepath.Join(dir, "boot1"), ExtraForwards: []int{22}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.VM.Stop()
	t.Log("\n" + r.String())
	if !r.OK() {
		t.Fatalf("verification failed:\n%s", r)
	}
	// A request through the gateway reaches the backend with the client
	// address only, whatever the client claimed.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.Seed.CertPEM)
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true,
			DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, n, r.HTTPS)
			}}}
	}
	req, _ := http.NewRequest("GET", "https://api.verify.test/api/v1/echo", nil)
	req.Header.Set("Authorization", "Bearer boot-test")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err := client(&tls.Config{RootCAs: pool, ServerName: "api.verify.test"}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("request through the VM: %s", resp.Status)
	}
	select {
	case h := <-seen:
		if xff := h.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] == "6.6.6.6" || strings.Contains(xff[0], ",") {
			t.Errorf("backend saw X-Forwarded-For %q; want only the client's address", xff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the host backend")
	}
	// The client whose JA4 the seed blocks gets 403.
	req, _ = http.NewRequest("GET", "https://api.verify.test/api/v1/echo", nil)
	req.Header.Set("Authorization", "Bearer boot-test")
	resp, err = client(blockedClient()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "forbidden") {
		t.Errorf("JA4-blocked client (%s): %s %s, want 403", blocked, resp.Status, body)
	}
	keys1 := sshHostKeys(t, r.Forwards[22])
	console1, _ := os.ReadFile(r.SerialLog)
	m1 := machineIDRE.FindSubmatch(console1)
	r.VM.Stop()

	// Second boot: the same image, a seed with another instance-id.
	iso2 := writeSeed(t, dir, port, 301, blocked)
	r2, err := verify.Boot(ctx, verify.Options{Image: image, Seed: iso2, WorkDir: filepath.Join(dir, "boot2"), ExtraForwards: []int{22}})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.VM.Stop()
	t.Log("\n" + r2.String())
	if r2.Seed.InstanceID == r.Seed.InstanceID {
		t.Fatal("the two seeds have the same instance-id")
	}
	if !r2.OK() {
		t.Fatalf("second boot failed:\n%s", r2)
	}
	keys2 := sshHostKeys(t, r2.Forwards[22])
	console2, _ := os.ReadFile(r2.SerialLog)
	m2 := machineIDRE.FindSubmatch(console2)
	if m1 == nil || m2 == nil {
		t.Fatalf("no machine-id in the ready markers")
	}
	if string(m1[1]) == string(m2[1]) {
		t.Errorf("both boots have machine-id %s", m1[1])
	}
	if keys1 == keys2 {
		t.Error("both boots present the same SSH host keys")
	}
}
