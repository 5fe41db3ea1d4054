package gateway_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/applbuild/applbuild/roles/gateway"
	"github.com/applbuild/applbuild/roles/values"
)

// controlPlane is a loopback TLS server standing in for a kube-apiserver:
// /readyz answers with a status the test sets, every other path answers
// with the server's name. Its certificate names it too, so a client can tell
// which control plane it reached from the handshake alone.
type controlPlane struct {
	name     string
	addr     netip.AddrPort
	ready    atomic.Int32 // /readyz status
	requests atomic.Int64 // requests other than /readyz
	checks   atomic.Int64 // /readyz requests
}

func startControlPlane(t testing.TB, name string, readyStatus int) *controlPlane {
	t.Helper()
	cp := &controlPlane{name: name}
	cp.ready.Store(int32(readyStatus))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = netip.MustParseAddrPort(ln.Addr().String())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/readyz" {
				cp.checks.Add(1)
				w.WriteHeader(int(cp.ready.Load()))
				return
			}
			cp.requests.Add(1)
			io.WriteString(w, "control-plane="+name)
		}),
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t, name+".k8s.test")}},
		ReadTimeout: 10 * time.Second,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return cp
}

// startK8sGateway starts the gateway in kubernetes-api mode in front of cps.
func startK8sGateway(t testing.TB, readyStatus int, cps ...*controlPlane) *gw {
	t.Helper()
	return startGateway(t, nil, func(v *values.Site, _ *values.GatewaySecrets, _ *gateway.Options) {
		v.Gateway.Mode = values.ModeKubernetesAPI
		v.Gateway.KubernetesAPI = &values.KubernetesAPI{Port: 6443, ReadyStatus: readyStatus}
		v.Gateway.Backends = nil
		for _, cp := range cps {
			v.Gateway.Backends = append(v.Gateway.Backends, values.Backend{Name: cp.name, Address: cp.addr.Addr(), Port: int(cp.addr.Port())})
		}
	})
}

// k8sRequest opens a new TLS connection to the gateway's Kubernetes API
// front and sends one GET. It returns the common name of the certificate the
// client was shown and the body of the answer.
func k8sRequest(t testing.TB, g *gw, path string) (certName, body string) {
	t.Helper()
	// The client knows no CA here: it records what it is shown.
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.opts.K8sBind, &tls.Config{InsecureSkipVerify: true, ServerName: "kubernetes.default"})
	if err != nil {
		t.Fatalf("TLS handshake through the Kubernetes API front %s: %v", g.opts.K8sBind, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	certName = c.ConnectionState().PeerCertificates[0].Subject.CommonName
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: kubernetes.default\r\nConnection: close\r\n\r\n", path)
	raw, _ := io.ReadAll(c)
	_, b, _ := strings.Cut(string(raw), "\r\n\r\n")
	return certName, b
}

// TestKubernetesAPIPassthrough: in kubernetes-api mode TLS passes through to
// the control planes untouched (the client sees a control plane's own
// certificate), a control plane whose /readyz fails is DOWN and gets no
// connection, and it comes UP and takes connections once /readyz answers
// the expected status.
func TestKubernetesAPIPassthrough(t *testing.T) {
	cps := []*controlPlane{
		startControlPlane(t, "cp1", 200),
		startControlPlane(t, "cp2", 200),
		startControlPlane(t, "cp3", 500),
	}
	g := startK8sGateway(t, 200, cps...)
	waitStatus(t, g, "be_k8s_api", "cp1", "UP", 10*time.Second)
	waitStatus(t, g, "be_k8s_api", "cp2", "UP", 10*time.Second)
	waitStatus(t, g, "be_k8s_api", "cp3", "DOWN", 10*time.Second)

	seen := map[string]int{}
	for i := 0; i < 12; i++ {
		cert, body := k8sRequest(t, g, fmt.Sprintf("/api/v1/namespaces/%d", i))
		name := strings.TrimSuffix(cert, ".k8s.test")
		if cert == serverName || name == cert {
			t.Fatalf("connection %d: the client was shown %q, not a control plane's certificate: TLS is not passed through", i, cert)
		}
		if body != "control-plane="+name {
			t.Errorf("connection %d: certificate of %s but answer %q: the bytes did not pass through untouched", i, name, body)
		}
		seen[name]++
	}
	if seen["cp1"] == 0 || seen["cp2"] == 0 || seen["cp3"] != 0 {
		t.Errorf("connections per control plane %v: want cp1 and cp2 to share them and cp3 (readyz 500) none", seen)
	}
	if n := cps[2].requests.Load(); n != 0 {
		t.Errorf("cp3 is not ready but received %d requests", n)
	}
	if cps[2].checks.Load() == 0 {
		t.Errorf("cp3 was never health-checked on /readyz")
	}

	cps[2].ready.Store(200)
	up := waitStatus(t, g, "be_k8s_api", "cp3", "UP", 5*time.Second)
	t.Logf("cp3 UP %s after /readyz turned 200", up.Round(time.Millisecond))
	for i := 0; i < 9; i++ {
		k8sRequest(t, g, "/version")
	}
	if cps[2].requests.Load() == 0 {
		t.Errorf("cp3 is UP but took none of 9 new connections")
	}
}

// TestKubernetesAPIReadyStatus: a site's ready_status other than 200 is what
// the health check expects: with 204 expected, a control plane answering 204
// is UP and one answering 200 is DOWN.
func TestKubernetesAPIReadyStatus(t *testing.T) {
	a := startControlPlane(t, "cpa", 204)
	b := startControlPlane(t, "cpb", 200)
	g := startK8sGateway(t, 204, a, b)
	waitStatus(t, g, "be_k8s_api", "cpa", "UP", 10*time.Second)
	waitStatus(t, g, "be_k8s_api", "cpb", "DOWN", 10*time.Second)
	for i := 0; i < 6; i++ {
		if cert, _ := k8sRequest(t, g, "/version"); cert != "cpa.k8s.test" {
			t.Errorf("connection %d reached %q; only cpa answers the expected 204", i, cert)
		}
	}
}
