package ja4test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/testenv"
	"github.com/sirupsen/logrus"
)

// ServerName is the host name clients put in SNI; it resolves to the
// loopback upstream through curl's --resolve and openssl's -servername.
const ServerName = "ja4.test"

// Body is what the upstream answers to every HTTP request, so a test can
// tell a relayed exchange from a broken one.
const Body = "ja4 upstream\n"

// Upstream is an HTTPS server (HTTP/1.1 and h2) on loopback that keeps the
// ClientHelloInfo crypto/tls parsed for every connection: an independent
// view of each hello to compare against package ja4.
type Upstream struct {
	Addr string

	mu    sync.Mutex
	infos []ServerView
	srv   *http.Server
}

// ServerView is what crypto/tls on the server side saw of a ClientHello.
type ServerView struct {
	CipherSuites      []uint16
	Extensions        []uint16
	SupportedVersions []uint16
	SignatureSchemes  []uint16
	ALPN              []string
	ServerName        string
}

// Hello turns the server's view into a ja4.ClientHello so that both views
// can be fingerprinted by the same rendering code. crypto/tls synthesises
// SupportedVersions from legacy_version when the extension is absent, whose
// maximum is that legacy version, so the version character is preserved.
func (v ServerView) Hello() *ja4.ClientHello {
	h := &ja4.ClientHello{
		CipherSuites:        v.CipherSuites,
		Extensions:          v.Extensions,
		SignatureAlgorithms: v.SignatureSchemes,
		ServerName:          v.ServerName,
	}
	if len(v.SupportedVersions) > 0 {
		h.LegacyVersion = slices.Max(v.SupportedVersions)
	}
	if slices.Contains(v.Extensions, 0x002b) {
		h.HasSupportedVersions = true
		h.SupportedVersions = v.SupportedVersions
	}
	for _, p := range v.ALPN {
		h.ALPN = append(h.ALPN, []byte(p))
	}
	return h
}

// StartUpstream starts the server with a fresh self-signed ECDSA P-256
// certificate for ServerName and 127.0.0.1; it stops when the test ends.
func StartUpstream(t testing.TB) *Upstream {
	t.Helper()
	cert, err := selfSigned()
	if err != nil {
		t.Fatalf("making the upstream certificate: %v", err)
	}
	u := &Upstream{}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			u.mu.Lock()
			u.infos = append(u.infos, ServerView{
				CipherSuites:      slices.Clone(chi.CipherSuites),
				Extensions:        slices.Clone(chi.Extensions),
				SupportedVersions: slices.Clone(chi.SupportedVersions),
				SignatureSchemes:  schemes(chi.SignatureSchemes),
				ALPN:              slices.Clone(chi.SupportedProtos),
				ServerName:        chi.ServerName,
			})
			u.mu.Unlock()
			return nil, nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for the upstream: %v", err)
	}
	u.Addr = ln.Addr().String()
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, Body)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		// Clients that close right after the handshake make the
		// server log an error per connection; that is expected here.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	u.srv.SetKeepAlivesEnabled(false)
	go u.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { u.srv.Close() })
	return u
}

// Views returns what the server saw, one entry per ClientHello.
func (u *Upstream) Views() []ServerView {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.infos)
}

func schemes(s []tls.SignatureScheme) []uint16 {
	out := make([]uint16, len(s))
	for i, v := range s {
		out[i] = uint16(v)
	}
	return out
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: ServerName},
		DNSNames:     []string{ServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Expect lists properties of a client's hello that follow from how the test
// configured the client; empty fields are not checked.
type Expect struct {
	Version string // two-character JA4 version, "12" or "13"
	SNI     string // "d" or "i"
	ALPN    string // two-character ALPN part
	// Ciphers, when set, is the exact set of non-GREASE cipher suites the
	// client was told to offer, apart from the renegotiation SCSV (0x00ff)
	// OpenSSL adds on its own.
	Ciphers []uint16
}

// Client is one real TLS client invocation.
type Client struct {
	Name   string
	Tool   string // program the client needs on PATH; empty for Go
	Expect Expect
	// Run connects to addr (host:port of the Recorder) and completes a
	// handshake, and an HTTP exchange where the client does one.
	Run func(ctx context.Context, addr string) error
}

// Clients returns the client matrix: Go crypto/tls (TLS 1.2 only and
// TLS 1.3), curl (HTTP/1.1, HTTP/2, TLS 1.2 capped, no SNI) and openssl
// s_client with several ALPN orders and protocol versions.
func Clients() []Client {
	goClient := func(cfg *tls.Config) func(ctx context.Context, addr string) error {
		return func(ctx context.Context, addr string) error {
			d := tls.Dialer{Config: cfg}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		}
	}
	curl := func(url string, args ...string) func(ctx context.Context, addr string) error {
		return func(ctx context.Context, addr string) error {
			_, port, _ := net.SplitHostPort(addr)
			u := strings.ReplaceAll(url, "PORT", port)
			argv := append([]string{"--silent", "--show-error", "--insecure", "--max-time", "15",
				"--resolve", ServerName + ":" + port + ":127.0.0.1"}, args...)
			out, err := run(ctx, "curl", append(argv, u)...)
			if err != nil {
				return err
			}
			if string(out) != Body {
				return fmt.Errorf("curl got body %q through the recorder, the upstream sends %q", out, Body)
			}
			return nil
		}
	}
	sClient := func(args ...string) func(ctx context.Context, addr string) error {
		return func(ctx context.Context, addr string) error {
			out, err := run(ctx, "openssl", append([]string{"s_client", "-connect", addr}, args...)...)
			if err != nil {
				return err
			}
			if !bytes.Contains(out, []byte("BEGIN CERTIFICATE")) {
				return fmt.Errorf("openssl s_client printed no server certificate, the handshake did not complete:\n%s", tail(out))
			}
			return nil
		}
	}
	https := "https://" + ServerName + ":PORT/"
	return []Client{
		{
			Name: "go tls1.2 two ciphers",
			Expect: Expect{Version: "12", SNI: "d", ALPN: "h1",
				Ciphers: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}},
			Run: goClient(&tls.Config{
				ServerName: ServerName, InsecureSkipVerify: true,
				MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
				CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
				NextProtos:   []string{"http/1.1", "h2"},
			}),
		},
		{
			Name:   "go tls1.3 no sni",
			Expect: Expect{Version: "13", SNI: "i", ALPN: "h2"},
			Run: goClient(&tls.Config{
				InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
				NextProtos: []string{"h2", "http/1.1"},
			}),
		},
		{Name: "curl --http1.1", Tool: "curl", Expect: Expect{Version: "13", SNI: "d", ALPN: "h1"},
			Run: curl(https, "--http1.1")},
		{Name: "curl --http2", Tool: "curl", Expect: Expect{Version: "13", SNI: "d", ALPN: "h2"},
			Run: curl(https, "--http2")},
		{Name: "curl --tlsv1.2 --tls-max 1.2", Tool: "curl", Expect: Expect{Version: "12", SNI: "d", ALPN: "h2"},
			Run: curl(https, "--tlsv1.2", "--tls-max", "1.2", "--http2")},
		{Name: "curl by IP address", Tool: "curl", Expect: Expect{Version: "13", SNI: "i", ALPN: "h1"},
			Run: curl("https://127.0.0.1:PORT/", "--http1.1")},
		{Name: "openssl -tls1_3 -alpn h2,http/1.1", Tool: "openssl", Expect: Expect{Version: "13", SNI: "d", ALPN: "h2"},
			Run: sClient("-servername", ServerName, "-tls1_3", "-alpn", "h2,http/1.1")},
		{Name: "openssl -tls1_2 -alpn http/1.1,h2", Tool: "openssl", Expect: Expect{Version: "12", SNI: "d", ALPN: "h1"},
			Run: sClient("-servername", ServerName, "-tls1_2", "-alpn", "http/1.1,h2")},
		{
			Name: "openssl -tls1_2 two ciphers no sni", Tool: "openssl",
			Expect: Expect{Version: "12", SNI: "i", ALPN: "h2",
				Ciphers: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}},
			Run: sClient("-noservername", "-tls1_2", "-alpn", "h2",
				"-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"),
		},
		// The first offered protocol starts and ends with "_", which is
		// not alphanumeric, so the ALPN part is the first and last hex
		// digit of "_x1_" = 5f78315f.
		{Name: "openssl -alpn _x1_,h2", Tool: "openssl", Expect: Expect{Version: "13", SNI: "d", ALPN: "5f"},
			Run: sClient("-servername", ServerName, "-alpn", "_x1_,h2")},
	}
}

// run is the one wrapper through which the clients are executed: it logs the
// command line, closes stdin (openssl s_client then exits after the
// handshake) and returns stdout, or an error with the tail of stderr.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	logrus.Debugf("running %s %s", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = nil
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func tail(b []byte) string {
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}

// Capture is one client's ClientHello as recorded on the wire, with what
// the server made of the same hello.
type Capture struct {
	Client Client
	Hello  []byte
	Server ServerView
}

// CaptureAll runs every client, one at a time, through a fresh Recorder in
// front of one Upstream and returns their hellos. A client whose program is
// missing is skipped (or fails the test in strict mode, see testenv).
func CaptureAll(t *testing.T, clients []Client) []Capture {
	t.Helper()
	up := StartUpstream(t)
	var out []Capture
	for _, c := range clients {
		if c.Tool != "" {
			testenv.RequireTool(t, c.Tool)
		}
		rec, err := ja4.NewRecorder(up.Addr)
		if err != nil {
			t.Fatal(err)
		}
		before := len(up.Views())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.Run(ctx, rec.Addr())
		cancel()
		if err != nil {
			rec.Close()
			t.Fatalf("%s through the recorder: %v", c.Name, err)
		}
		hellos, err := rec.WaitHellos(1, 5*time.Second)
		rec.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if len(hellos) != 1 {
			t.Fatalf("%s made %d TLS connections, the test expects exactly one", c.Name, len(hellos))
		}
		views := up.Views()
		if len(views) != before+1 {
			t.Fatalf("%s: the upstream saw %d new ClientHellos, want 1", c.Name, len(views)-before)
		}
		out = append(out, Capture{Client: c, Hello: hellos[0], Server: views[len(views)-1]})
	}
	return out
}
