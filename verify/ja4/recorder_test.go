package ja4_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/ja4/ja4test"
)

// echoUpstream accepts connections on loopback and echoes what it reads.
func echoUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRecorderReassemblesAndForwards sends a hello split over records and
// over several small writes, followed by more data, and checks that the
// recorder captured exactly the hello records and forwarded every byte.
func TestRecorderReassemblesAndForwards(t *testing.T) {
	rec, err := ja4.NewRecorder(echoUpstream(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()

	ex := ja4test.SpecExamples()[0]
	h := ex.Hello
	h.RecordSize = 200
	hello := h.Bytes()
	after := []byte("\x14\x03\x03\x00\x01\x01 and then application bytes")
	c, err := net.Dial("tcp", rec.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	all := append(append([]byte(nil), hello...), after...)
	for i := 0; i < len(all); i += 37 {
		if _, err := c.Write(all[i:min(i+37, len(all))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	echo := make([]byte, len(all))
	if _, err := io.ReadFull(c, echo); err != nil {
		t.Fatalf("reading back through the recorder: %v", err)
	}
	if !bytes.Equal(echo, all) {
		t.Fatalf("the upstream received different bytes than the client sent")
	}
	got, err := rec.WaitHellos(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0], hello) {
		t.Fatalf("recorded %d bytes, want exactly the %d bytes of the hello records", len(got[0]), len(hello))
	}
	fp, err := ja4.Compute(got[0])
	if err != nil || fp.JA4 != ex.Want.JA4 {
		t.Fatalf("recorded hello fingerprints as %q (%v), want %q", fp.JA4, err, ex.Want.JA4)
	}
}

// TestRecorderNonTLS checks that a connection that does not start with a
// ClientHello is reported, not recorded, and still relayed.
func TestRecorderNonTLS(t *testing.T) {
	rec, err := ja4.NewRecorder(echoUpstream(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	c, err := net.Dial("tcp", rec.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("GET / HTTP/1.0\r\n\r\n")
	c.Write(msg)
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(c, echo); err != nil || !bytes.Equal(echo, msg) {
		t.Fatalf("plain bytes were not relayed: %q, %v", echo, err)
	}
	if n := len(rec.Hellos()); n != 0 {
		t.Errorf("recorded %d hellos from a plain HTTP connection", n)
	}
	errs := rec.Errors()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "not a TLS handshake record") {
		t.Errorf("capture errors %v, want one saying the input is not TLS", errs)
	}
	if _, err := ja4.NewRecorder("no-port"); err == nil {
		t.Errorf("NewRecorder accepted an upstream without a port")
	}
}
