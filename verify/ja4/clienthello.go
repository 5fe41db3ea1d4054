package ja4

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TLS wire constants used by the parser (RFC 8446 §4, §5.1).
const (
	recordTypeHandshake    = 0x16
	handshakeClientHello   = 0x01
	recordHeaderLen        = 5
	handshakeHeaderLen     = 4
	maxRecordPayload       = 1 << 14 // RFC 8446 §5.1: a plaintext fragment is at most 2^14 bytes
	extServerName          = 0x0000
	extSignatureAlgorithms = 0x000d
	extALPN                = 0x0010
	extSupportedVersions   = 0x002b
)

// ClientHello is what JA4 needs from a TLS ClientHello, in wire order with
// GREASE values kept, so that every JA4 variant (sorted or original order)
// can be derived from it.
type ClientHello struct {
	// LegacyVersion is the ClientHello's legacy_version field (0x0303 for
	// TLS 1.2 and 1.3 clients). The record-layer version is ignored, as the
	// JA4 specification says.
	LegacyVersion uint16
	// CipherSuites lists the offered cipher suites in wire order.
	CipherSuites []uint16
	// Extensions lists the extension types in wire order, duplicates kept.
	Extensions []uint16
	// SupportedVersions is the content of the supported_versions extension;
	// HasSupportedVersions tells an absent extension from an empty one.
	SupportedVersions    []uint16
	HasSupportedVersions bool
	// SignatureAlgorithms is the content of the signature_algorithms
	// extension in wire order.
	SignatureAlgorithms []uint16
	// ALPN lists the offered application protocols in the client's order.
	ALPN [][]byte
	// ServerName is the first host_name of the server_name extension, empty
	// when the extension is absent or carries no host_name.
	ServerName string
	// WireLen is how many input bytes the TLS records carrying the
	// ClientHello occupy; input past it (the rest of the last record, or
	// later records) is not part of the hello.
	WireLen int
}

// TruncatedError reports input that ends before the ClientHello does. Need
// is the smallest total input length at which parsing can make progress, so
// a reader on a live connection knows how much more to wait for.
type TruncatedError struct {
	What string // the structure that is cut short
	Need int    // total input bytes needed to read it
	Have int    // total input bytes present
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("truncated ClientHello: %s needs %d bytes of input, only %d present", e.What, e.Need, e.Have)
}

// ErrNotTLSHandshake is wrapped by errors for input that does not start with
// a TLS handshake record, such as plain HTTP or an SSLv2-format hello.
var ErrNotTLSHandshake = errors.New("not a TLS handshake record")

// ParseClientHello parses a ClientHello as a client sends it on a TCP
// connection: one or more TLS handshake records (content type 0x16) whose
// payloads, concatenated, start with a ClientHello handshake message. Input
// that ends early yields a *TruncatedError; anything that is not a
// well-formed ClientHello yields an error naming the offending field.
func ParseClientHello(b []byte) (*ClientHello, error) {
	msg, wireLen, err := reassemble(b)
	if err != nil {
		return nil, err
	}
	h, err := parseBody(msg)
	if err != nil {
		return nil, err
	}
	h.WireLen = wireLen
	return h, nil
}

// reassemble collects handshake record payloads until they hold the whole
// first handshake message, and returns that message's body. Clients may split
// a large hello (post-quantum key shares, padding) over several records.
func reassemble(b []byte) (body []byte, wireLen int, err error) {
	var msg []byte
	off := 0
	want := -1 // body length once the handshake header has been read
	for {
		if len(b) < off+recordHeaderLen {
			return nil, 0, &TruncatedError{What: "TLS record header", Need: off + recordHeaderLen, Have: len(b)}
		}
		hdr := b[off : off+recordHeaderLen]
		if hdr[0] != recordTypeHandshake {
			if off == 0 {
				return nil, 0, fmt.Errorf("%w: first byte is 0x%02x, a ClientHello record starts with 0x16", ErrNotTLSHandshake, hdr[0])
			}
			return nil, 0, fmt.Errorf("record at offset %d has content type 0x%02x before the ClientHello is complete; only handshake records (0x16) may carry it", off, hdr[0])
		}
		if hdr[1] != 0x03 {
			return nil, 0, fmt.Errorf("%w: record version 0x%02x%02x at offset %d, want 0x03xx", ErrNotTLSHandshake, hdr[1], hdr[2], off)
		}
		n := int(binary.BigEndian.Uint16(hdr[3:5]))
		if n == 0 || n > maxRecordPayload {
			return nil, 0, fmt.Errorf("record at offset %d declares %d payload bytes, valid is 1 to %d", off, n, maxRecordPayload)
		}
		end := off + recordHeaderLen + n
		if len(b) < end {
			return nil, 0, &TruncatedError{What: fmt.Sprintf("TLS record at offset %d", off), Need: end, Have: len(b)}
		}
		msg = append(msg, b[off+recordHeaderLen:end]...)
		off = end
		if want < 0 && len(msg) >= handshakeHeaderLen {
			if msg[0] != handshakeClientHello {
				return nil, 0, fmt.Errorf("handshake message type is %d, a ClientHello is type 1", msg[0])
			}
			want = int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		}
		if want >= 0 && len(msg) >= handshakeHeaderLen+want {
			return msg[handshakeHeaderLen : handshakeHeaderLen+want], off, nil
		}
	}
}

// reader walks a byte slice; every read names the field so errors say what
// was malformed.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) bytes(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("%s needs %d bytes, only %d left in its enclosing structure", field, n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) int {
	v := r.bytes(1, field)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16(field string) int {
	v := r.bytes(2, field)
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

// vec8 and vec16 read a length-prefixed vector (RFC 8446 §3.4).
func (r *reader) vec8(field string) []byte  { return r.bytes(r.u8(field+" length"), field) }
func (r *reader) vec16(field string) []byte { return r.bytes(r.u16(field+" length"), field) }

func uint16List(b []byte, field string) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("%s is %d bytes long, it must be a whole number of 2-byte values", field, len(b))
	}
	out := make([]uint16, 0, len(b)/2)
	for i := 0; i < len(b); i += 2 {
		out = append(out, binary.BigEndian.Uint16(b[i:]))
	}
	return out, nil
}

// parseBody parses the ClientHello body (RFC 8446 §4.1.2; the TLS 1.2 form
// of RFC 5246 §7.4.1.2 is the same on the wire). Extensions JA4 reads are
// parsed strictly; others are only skipped.
func parseBody(msg []byte) (*ClientHello, error) {
	r := &reader{b: msg}
	h := &ClientHello{}
	h.LegacyVersion = uint16(r.u16("legacy_version"))
	r.bytes(32, "random")
	if sid := r.vec8("legacy_session_id"); len(sid) > 32 {
		r.fail("legacy_session_id is %d bytes, at most 32 are valid", len(sid))
	}
	suites := r.vec16("cipher_suites")
	r.vec8("legacy_compression_methods")
	if r.err != nil {
		return nil, r.err
	}
	var err error
	if h.CipherSuites, err = uint16List(suites, "cipher_suites"); err != nil {
		return nil, err
	}
	if len(r.b) == 0 {
		// Pre-TLS 1.2 clients may omit the extensions block entirely.
		return h, nil
	}
	exts := r.vec16("extensions")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d bytes follow the extensions block inside the ClientHello; the block must end the message", len(r.b))
	}
	seen := map[int]bool{}
	er := &reader{b: exts}
	for len(er.b) > 0 && er.err == nil {
		typ := er.u16("extension type")
		data := er.vec16(fmt.Sprintf("extension 0x%04x data", typ))
		if er.err != nil {
			break
		}
		h.Extensions = append(h.Extensions, uint16(typ))
		if seen[typ] {
			// RFC 8446 §4.2 forbids duplicates; the first one is what a
			// server acts on, so only it contributes values.
			continue
		}
		seen[typ] = true
		if err := h.parseExtension(typ, data); err != nil {
			return nil, err
		}
	}
	if er.err != nil {
		return nil, er.err
	}
	return h, nil
}

func (h *ClientHello) parseExtension(typ int, data []byte) error {
	r := &reader{b: data}
	var err error
	switch typ {
	case extServerName:
		// Only the presence of server_name matters to JA4, so a malformed
		// list is not an error; the name is kept for logging when readable.
		list := r.vec16("server_name_list")
		lr := &reader{b: list}
		for len(lr.b) > 0 && lr.err == nil {
			kind := lr.u8("name_type")
			name := lr.vec16("host_name")
			if lr.err == nil && kind == 0 {
				h.ServerName = string(name)
				break
			}
		}
		return nil
	case extALPN:
		list := r.vec16("ALPN protocol_name_list")
		if r.err == nil && len(r.b) != 0 {
			r.fail("ALPN extension has %d bytes after its protocol list", len(r.b))
		}
		lr := &reader{b: list}
		for len(lr.b) > 0 && lr.err == nil {
			if p := lr.vec8("ALPN protocol name"); lr.err == nil {
				h.ALPN = append(h.ALPN, p)
			}
		}
		if lr.err != nil {
			return lr.err
		}
	case extSupportedVersions:
		list := r.vec8("supported_versions list")
		if r.err == nil && len(r.b) != 0 {
			r.fail("supported_versions extension has %d bytes after its list", len(r.b))
		}
		if r.err == nil {
			h.SupportedVersions, err = uint16List(list, "supported_versions list")
			h.HasSupportedVersions = true
		}
	case extSignatureAlgorithms:
		list := r.vec16("signature_algorithms list")
		if r.err == nil && len(r.b) != 0 {
			r.fail("signature_algorithms extension has %d bytes after its list", len(r.b))
		}
		if r.err == nil {
			h.SignatureAlgorithms, err = uint16List(list, "signature_algorithms list")
		}
	}
	if r.err != nil {
		return r.err
	}
	return err
}
