package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckNeedsAnHTTPAnswerOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check", "--addr", addr}, &out, &errb); code != 0 {
		t.Fatalf("check against a TLS server answering 404: exit %d: %s", code, errb.String())
	}
	// A TCP listener that accepts but never speaks TLS is not serving.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	errb.Reset()
	if code := run(context.Background(), []string{"check", "--addr", ln.Addr().String(), "--timeout", "300ms"}, &out, &errb); code != 1 {
		t.Fatalf("check against a silent listener: exit %d, want 1", code)
	}
}

func TestApplyReportsBadValuesWithMarker(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.json"), []byte(`{"format": 9}`), 0o644)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"apply", "--values", dir, "--console", ""}, &out, &errb)
	if code != 1 || !strings.HasPrefix(out.String(), FailedMarker) || !strings.Contains(out.String(), "format 9 is not supported") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("exit %d %q", code, errb.String())
	}
}
