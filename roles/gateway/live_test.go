package gateway_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mustJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, b)
	}
	return m
}

// TestTLSTermination: the site's certificate, h2 and http/1.1 by ALPN, TLS
// 1.2 and 1.3 only, no session tickets, and HTTP redirected to HTTPS.
func TestTLSTermination(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, nil)

	for _, tc := range []struct {
		protos []string
		want   string
		ver    uint16
	}{{[]string{"h2", "http/1.1"}, "h2", tls.VersionTLS13}, {[]string{"http/1.1"}, "http/1.1", tls.VersionTLS13}, {[]string{"h2"}, "h2", tls.VersionTLS12}} {
		c, err := tls.Dial("tcp", g.https, &tls.Config{RootCAs: g.pool, ServerName: serverName, NextProtos: tc.protos, MaxVersion: tc.ver})
		if err != nil {
			t.Fatalf("TLS handshake with the site certificate (verified): %v", err)
		}
		st := c.ConnectionState()
		c.Close()
		if st.NegotiatedProtocol != tc.want || st.Version != tc.ver {
			t.Errorf("offered %v max %x: negotiated %q version %x, want %q", tc.protos, tc.ver, st.NegotiatedProtocol, st.Version, tc.want)
		}
		if st.PeerCertificates[0].Subject.CommonName != serverName {
			t.Errorf("presented certificate for %q", st.PeerCertificates[0].Subject.CommonName)
		}
	}
	// Session tickets: none in TLS 1.2. TLS 1.3 resumption stays stateful
	// (the "ticket" is only an id into this gateway's session cache), so
	// no ticket key exists that clones of the image could share.
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cache := &recordingCache{}
		c, err := tls.Dial("tcp", g.https, &tls.Config{RootCAs: g.pool, ServerName: serverName, NextProtos: []string{"http/1.1"}, MaxVersion: ver, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		// TLS 1.3 tickets arrive after the handshake: read a response.
		fmt.Fprintf(c, "GET /api/health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", serverName)
		io.ReadAll(c)
		c.Close()
		for _, tk := range cache.tickets {
			if ver == tls.VersionTLS12 || len(tk) > 64 {
				t.Errorf("TLS %x: the gateway issued a %d-byte session ticket; want none (1.2) or only a stateful id (1.3)", ver, len(tk))
			}
		}
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c, err := tls.Dial("tcp", g.https, &tls.Config{RootCAs: g.pool, ServerName: serverName, MaxVersion: v})
		if err == nil {
			c.Close()
			t.Errorf("a TLS %x handshake succeeded; the minimum is TLS 1.2", v)
		}
	}
	// A TLS 1.2 client offering only a CBC cipher is refused.
	c, err := tls.Dial("tcp", g.https, &tls.Config{RootCAs: g.pool, ServerName: serverName, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		c.Close()
		t.Error("a CBC-only TLS 1.2 client was accepted; only AEAD ciphers are allowed")
	}

	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get("http://" + g.http + "/api/v1/items?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || !strings.HasPrefix(resp.Header.Get("Location"), "https://") || !strings.HasSuffix(resp.Header.Get("Location"), "/api/v1/items?x=1") {
		t.Errorf("plain HTTP: %d Location %q, want 301 to the https URL", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestRequestHeadersSanitised: a request reaches a backend with exactly one
// X-Forwarded-For (the client), and a fresh X-Request-ID, whatever the
// client sent.
func TestRequestHeadersSanitised(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, nil)
	g.waitServers(t, "UP", "node1")
	for _, protos := range [][]string{{"http/1.1"}, {"h2"}} {
		st, _, body := g.do(t, g.client(protos...), "GET", "/api/v1/accounts", map[string]string{"X-Forwarded-For": "6.6.6.6, 10.0.0.1", "X-Request-ID": "attacker-chosen", "Forwarded": "for=6.6.6.6"}, nil)
		if st != 200 {
			t.Fatalf("%v: status %d: %s", protos, st, body)
		}
		var e echo
		json.Unmarshal(body, &e)
		if xff := e.Header["X-Forwarded-For"]; len(xff) != 1 || xff[0] != "127.0.0.1" {
			t.Errorf("%v: backend saw X-Forwarded-For %q, want only the client address 127.0.0.1", protos, xff)
		}
		rid := e.Header["X-Request-Id"]
		if len(rid) != 1 || rid[0] == "attacker-chosen" || !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(rid[0]) {
			t.Errorf("%v: backend saw X-Request-ID %q, want one fresh UUID", protos, rid)
		}
		if len(e.Header["Forwarded"]) != 0 {
			t.Errorf("%v: client's Forwarded header reached the backend", protos)
		}
		_, logged, _ := g.requestLog(t, "/api/v1/accounts")
		if len(rid) == 1 && logged == "" {
			t.Errorf("request id not logged")
		}
	}
}

// TestSlowClientTimedOut: a client that never finishes its headers is cut off
// after timeout http-request with a 408.
func TestSlowClientTimedOut(t *testing.T) {
	b1 := startBackend(t, "node1", 0)
	g := startGateway(t, []*backend{b1}, nil)
	c, err := tls.Dial("tcp", g.https, &tls.Config{RootCAs: g.pool, ServerName: serverName, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "GET /api/health HTTP/1.1\r\nHost: %s\r\nX-Slow: ", serverName)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	took := time.Since(start)
	if !strings.Contains(line, " 408 ") {
		t.Fatalf("after %s: got %q (%v), want a 408 status line", took, line, err)
	}
	if took < 1500*time.Millisecond || took > 6*time.Second {
		t.Errorf("408 after %s, want about the 2s timeout http-request", took)
	}
	var _ net.Conn = c
}

// recordingCache keeps the tickets a server hands the client.
type recordingCache struct{ tickets [][]byte }

func (c *recordingCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (c *recordingCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		return
	}
	if tk, _, err := cs.ResumptionState(); err == nil {
		c.tickets = append(c.tickets, tk)
	}
}
