// Package ja4test provides what tests of JA4 implementations share: a
// ClientHello builder, the published JA4 examples rebuilt as wire bytes, and
// a matrix of real TLS clients (curl, openssl s_client, Go crypto/tls)
// captured on loopback through a ja4.Recorder.
package ja4test

import (
	"encoding/binary"
	"fmt"
)

// Hello describes a ClientHello to build. Extensions are emitted in
// ExtOrder; the server_name, ALPN, signature_algorithms and
// supported_versions extensions get bodies from the fields below, every other
// extension gets a small fixed body so parsers cannot rely on empty ones.
type Hello struct {
	LegacyVersion     uint16 // 0 means 0x0303
	Ciphers           []uint16
	ExtOrder          []uint16
	ServerName        string
	ALPN              [][]byte
	SigAlgs           []uint16
	SupportedVersions []uint16
	// RecordSize splits the handshake message into records of at most
	// this many bytes; 0 means one record.
	RecordSize int
	// NoExtensions omits the extensions block entirely (allowed before
	// TLS 1.3) instead of writing an empty one.
	NoExtensions bool
}

func u16(b []byte, v int) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }

func list16(vs []uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = u16(b, int(v))
	}
	return b
}

// Bytes renders the hello as TLS records, ready to be written to a socket.
func (h Hello) Bytes() []byte {
	var body []byte
	v := h.LegacyVersion
	if v == 0 {
		v = 0x0303
	}
	body = u16(body, int(v))
	for i := 0; i < 32; i++ { // fixed "random" keeps fixtures deterministic
		body = append(body, byte(i*7+1))
	}
	body = append(body, 32)
	for i := 0; i < 32; i++ {
		body = append(body, byte(0xe0+i))
	}
	cs := list16(h.Ciphers)
	body = u16(body, len(cs))
	body = append(body, cs...)
	body = append(body, 1, 0) // compression: null only

	if !h.NoExtensions {
		var exts []byte
		for _, typ := range h.ExtOrder {
			data := h.extBody(typ)
			exts = u16(exts, int(typ))
			exts = u16(exts, len(data))
			exts = append(exts, data...)
		}
		body = u16(body, len(exts))
		body = append(body, exts...)
	}

	msg := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	msg = append(msg, body...)

	size := h.RecordSize
	if size <= 0 || size > 1<<14 {
		size = 1 << 14
	}
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, 0x16, 0x03, 0x01, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func (h Hello) extBody(typ uint16) []byte {
	switch typ {
	case 0x0000:
		name := []byte(h.ServerName)
		entry := append([]byte{0}, u16(nil, len(name))...)
		entry = append(entry, name...)
		return append(u16(nil, len(entry)), entry...)
	case 0x0010:
		var l []byte
		for _, p := range h.ALPN {
			l = append(l, byte(len(p)))
			l = append(l, p...)
		}
		return append(u16(nil, len(l)), l...)
	case 0x000d:
		l := list16(h.SigAlgs)
		return append(u16(nil, len(l)), l...)
	case 0x002b:
		l := list16(h.SupportedVersions)
		return append([]byte{byte(len(l))}, l...)
	default:
		// Content a parser must skip; includes bytes that look like
		// extension headers to catch parsers that do not honour lengths.
		return []byte{0x00, 0x10, 0x00, byte(typ)}
	}
}

// Example is a ClientHello with the fingerprints it must produce.
type Example struct {
	Name  string
	Hello Hello
	Want  Want
}

// Want holds expected fingerprints; empty fields are not checked.
type Want struct {
	JA4, JA4R, JA4O, JA4RO string
}

// specCiphers, specExts and specSigAlgs are the values the FoxIO JA4
// specification (technical_details/JA4.md, sections "Cipher hash",
// "Extension hash" and "Raw Output") uses for its worked example, in the
// order the example lists them.
var (
	specCiphers = []uint16{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035}
	specExts    = []uint16{0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015}
	specSigAlgs = []uint16{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601}
)

func specHello() Hello {
	return Hello{
		Ciphers:           specCiphers,
		ExtOrder:          specExts,
		ServerName:        "example.com",
		ALPN:              [][]byte{[]byte("h2"), []byte("http/1.1")},
		SigAlgs:           specSigAlgs,
		SupportedVersions: []uint16{0x0304, 0x0303},
	}
}

func withGREASE(vs []uint16, grease ...uint16) []uint16 {
	out := append([]uint16{grease[0]}, vs...)
	for _, g := range grease[1:] {
		out = append(out, g)
	}
	return out
}

// SpecExamples returns the JA4 specification's published examples, each
// rebuilt from exactly the cipher, extension and signature algorithm values
// the specification lists, plus variants of it whose expected values follow
// from the specification's rules.
func SpecExamples() []Example {
	// technical_details/JA4.md, "Example" and "Raw Output": JA4, JA4_r,
	// JA4_o and JA4_ro of the worked example.
	spec := Example{
		Name:  "spec worked example",
		Hello: specHello(),
		Want: Want{
			JA4:   "t13d1516h2_8daaf6152771_e5627efa2ab1",
			JA4R:  "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601",
			JA4O:  "t13d1516h2_acb858a92679_18f69afefd3d",
			JA4RO: "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015_0403,0804,0401,0503,0805,0501,0806,0601",
		},
	}

	// The same hello with GREASE in every list, as Chrome sends it. The
	// specification says GREASE is ignored everywhere, so every rendering
	// must be unchanged.
	greased := specHello()
	greased.Ciphers = withGREASE(specCiphers, 0x0a0a)
	greased.ExtOrder = withGREASE(specExts, 0x1a1a, 0xfafa)
	greased.SigAlgs = withGREASE(specSigAlgs, 0x2a2a)
	greased.SupportedVersions = []uint16{0x7a7a, 0x0304, 0x0303}
	greasedEx := Example{Name: "spec example with GREASE everywhere", Hello: greased, Want: spec.Want}

	// technical_details/JA4.md, "Extension hash": with no signature
	// algorithms the extension string ends without an underscore and
	// hashes to 6d807ffa2a79. Without the signature_algorithms extension
	// the list also loses 000d, so the hash changes; keeping 000d with an
	// empty list reproduces the published value.
	noSigs := specHello()
	noSigs.SigAlgs = nil
	noSigsEx := Example{
		Name:  "spec example without signature algorithms",
		Hello: noSigs,
		Want: Want{
			JA4:  "t13d1516h2_8daaf6152771_6d807ffa2a79",
			JA4R: "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01",
		},
	}

	// The worked example split into 100-byte records: the fingerprint
	// depends on the handshake message, not on how records carve it up.
	split := specHello()
	split.RecordSize = 100
	splitEx := Example{Name: "spec example over several records", Hello: split, Want: spec.Want}

	// "Cipher hash" and "Extension hash": an empty list is written as
	// twelve zeros instead of a hash of nothing. No extensions at all
	// also means no SNI ("i"), no ALPN ("00") and the legacy version.
	empty := Example{
		Name:  "no ciphers and no extensions",
		Hello: Hello{LegacyVersion: 0x0301, NoExtensions: true},
		Want: Want{
			JA4:   "t10i000000_000000000000_000000000000",
			JA4R:  "t10i000000__",
			JA4O:  "t10i000000_000000000000_000000000000",
			JA4RO: "t10i000000__",
		},
	}
	return []Example{spec, greasedEx, noSigsEx, splitEx, empty}
}

// String names an example in test output.
func (e Example) String() string { return fmt.Sprintf("%s (%d bytes)", e.Name, len(e.Hello.Bytes())) }
