package ja4

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// maxHelloInput bounds how much a Recorder buffers while waiting for a
// ClientHello to complete; a real hello is a few kilobytes at most.
const maxHelloInput = 256 << 10

// Recorder is a loopback TCP forwarder that captures the ClientHello of every
// connection it relays. Point a TLS client at Addr and the Recorder forwards
// the connection, unchanged, to the upstream address while keeping a copy of
// the records that carry the client's first ClientHello. Tests use it to
// compare the fingerprint a server computed with the one this package
// computes from the very same bytes.
type Recorder struct {
	ln       net.Listener
	upstream string

	// HelloTimeout bounds how long a connection may take to deliver its
	// complete ClientHello. Set it before the first client connects.
	HelloTimeout time.Duration

	mu     sync.Mutex
	hellos [][]byte
	errs   []error
	conns  map[net.Conn]struct{}
	closed bool
	notify chan struct{} // closed and replaced whenever a hello or error is recorded
	wg     sync.WaitGroup
}

// NewRecorder listens on 127.0.0.1 on a free port and forwards every
// accepted connection to upstream (host:port).
func NewRecorder(upstream string) (*Recorder, error) {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("upstream %q is not a host:port address: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on 127.0.0.1 for the recorder: %w", err)
	}
	r := &Recorder{
		ln:           ln,
		upstream:     upstream,
		HelloTimeout: 10 * time.Second,
		conns:        map[net.Conn]struct{}{},
		notify:       make(chan struct{}),
	}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the host:port clients should connect to.
func (r *Recorder) Addr() string { return r.ln.Addr().String() }

// Hellos returns a copy of the ClientHello bytes captured so far, one entry
// per connection in the order the hellos completed. Each entry is exactly
// the TLS records that carried the hello.
func (r *Recorder) Hellos() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]byte, len(r.hellos))
	for i, h := range r.hellos {
		out[i] = append([]byte(nil), h...)
	}
	return out
}

// Errors returns the capture failures so far: connections whose first bytes
// were not a complete, parseable ClientHello. Such connections are still
// forwarded.
func (r *Recorder) Errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// WaitHellos blocks until at least n hellos have been captured and returns
// them, or fails after timeout saying how many arrived and any capture errors.
func (r *Recorder) WaitHellos(n int, timeout time.Duration) ([][]byte, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, ch := len(r.hellos), r.notify
		errs := append([]error(nil), r.errs...)
		r.mu.Unlock()
		if got >= n {
			return r.Hellos(), nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil, fmt.Errorf("captured %d of %d ClientHellos within %s (capture errors: %v)", got, n, timeout, errors.Join(errs...))
		}
	}
}

// Close stops listening, closes every relayed connection and waits for the
// relay goroutines to finish.
func (r *Recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	err := r.ln.Close()
	r.wg.Wait()
	return err
}

func (r *Recorder) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // listener closed
		}
		if !r.track(c) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			r.relay(c)
		}()
	}
}

func (r *Recorder) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Recorder) untrack(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	c.Close()
}

func (r *Recorder) record(hello []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
	} else {
		r.hellos = append(r.hellos, hello)
	}
	close(r.notify)
	r.notify = make(chan struct{})
}

// relay reads the client's first flight until it holds a whole ClientHello
// (or proves not to be one), records it, then copies both directions
// verbatim. The upstream is dialled only after the hello is read so a client
// that never sends one does not hold an upstream connection open.
func (r *Recorder) relay(client net.Conn) {
	buf, hello, err := r.readHello(client)
	if err != nil {
		logrus.Debugf("ja4 recorder: connection from %s: %v", client.RemoteAddr(), err)
	}
	r.record(hello, err)
	if len(buf) == 0 {
		return
	}
	up, err := net.DialTimeout("tcp", r.upstream, 5*time.Second)
	if err != nil {
		logrus.Debugf("ja4 recorder: dialling upstream %s: %v", r.upstream, err)
		return
	}
	if !r.track(up) {
		up.Close()
		return
	}
	defer r.untrack(up)
	if _, err := up.Write(buf); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// Half-close so the peer sees EOF while the other direction
		// drains, as a direct connection would.
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, client)
	go pipe(client, up)
	<-done
	<-done
}

// readHello returns everything read from the client so far (all of it must
// still be forwarded) and, on success, a copy of exactly the records that
// carry the ClientHello.
func (r *Recorder) readHello(c net.Conn) (buf, hello []byte, err error) {
	c.SetReadDeadline(time.Now().Add(r.HelloTimeout))
	defer c.SetReadDeadline(time.Time{})
	chunk := make([]byte, 16<<10)
	for {
		h, perr := ParseClientHello(buf)
		if perr == nil {
			return buf, append([]byte(nil), buf[:h.WireLen]...), nil
		}
		var te *TruncatedError
		if !errors.As(perr, &te) {
			return buf, nil, fmt.Errorf("first %d bytes are not a ClientHello: %w", len(buf), perr)
		}
		if len(buf) >= maxHelloInput {
			return buf, nil, fmt.Errorf("no complete ClientHello in the first %d bytes: %w", len(buf), perr)
		}
		n, rerr := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if rerr != nil {
			if _, perr := ParseClientHello(buf); perr == nil {
				continue
			}
			return buf, nil, fmt.Errorf("reading the ClientHello after %d bytes: %w", len(buf), rerr)
		}
	}
}
