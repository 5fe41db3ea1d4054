// Package ja4 computes JA4 TLS client fingerprints (FoxIO JA4 specification,
// technical_details/JA4.md in github.com/FoxIO-LLC/ja4) from the raw bytes of
// a ClientHello as seen on a TCP connection. It is the reference the
// gateway's Lua implementation is checked against, and its Recorder captures
// real clients' hellos on loopback so tests can compare what a server
// computed with what this package computes from the same wire bytes.
package ja4

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// Fingerprint holds the four renderings of JA4 the specification defines.
type Fingerprint struct {
	// JA4 is the fingerprint proper ("ja4"), e.g.
	// t13d1516h2_8daaf6152771_e5627efa2ab1.
	JA4 string
	// JA4R is the raw, unhashed form with sorted lists ("ja4_r").
	JA4R string
	// JA4O is the hashed form over the original wire order with SNI and
	// ALPN kept in the extension list ("ja4_o").
	JA4O string
	// JA4RO is the raw form in original wire order ("ja4_ro").
	JA4RO string
}

// String returns the JA4 fingerprint proper.
func (f Fingerprint) String() string { return f.JA4 }

// Compute parses raw ClientHello bytes and returns their fingerprint.
func Compute(b []byte) (Fingerprint, error) {
	h, err := ParseClientHello(b)
	if err != nil {
		return Fingerprint{}, err
	}
	return h.JA4(), nil
}

// IsGREASE reports whether v is one of the sixteen GREASE values of RFC 8701
// (0x0a0a, 0x1a1a, ... 0xfafa), which JA4 ignores wherever they appear.
func IsGREASE(v uint16) bool {
	return v>>8 == v&0xff && v&0x0f == 0x0a
}

// versionCodes maps protocol versions to the two characters of JA4_a.
var versionCodes = map[uint16]string{
	0x0304: "13",
	0x0303: "12",
	0x0302: "11",
	0x0301: "10",
	0x0300: "s3",
	0x0002: "s2",
	0xfeff: "d1",
	0xfefd: "d2",
	0xfefc: "d3",
}

// emptyHash stands for an empty list instead of the hash of nothing, so a
// reader sees at once that the field had no values.
const emptyHash = "000000000000"

// JA4 renders the fingerprint. The protocol character is always "t": the
// input was TLS records read from TCP.
func (h *ClientHello) JA4() Fingerprint {
	ciphers := withoutGREASE(h.CipherSuites)
	exts := withoutGREASE(h.Extensions)
	sigs := withoutGREASE(h.SignatureAlgorithms)

	var a strings.Builder
	a.WriteByte('t')
	a.WriteString(h.versionCode())
	if slices.Contains(exts, extServerName) {
		a.WriteByte('d')
	} else {
		a.WriteByte('i')
	}
	a.WriteString(count2(len(ciphers)))
	a.WriteString(count2(len(exts)))
	a.WriteString(alpnCode(h.ALPN))
	prefix := a.String()

	// The sorted extension list drops SNI and ALPN: part a already holds
	// them, and dropping them keeps part c stable across destinations.
	var extsSorted []uint16
	for _, e := range exts {
		if e != extServerName && e != extALPN {
			extsSorted = append(extsSorted, e)
		}
	}
	ciphersSorted := slices.Clone(ciphers)
	slices.Sort(ciphersSorted)
	slices.Sort(extsSorted)

	sigList := hexList(sigs)
	partC := func(extList string) string {
		if len(sigs) == 0 {
			return extList
		}
		return extList + "_" + sigList
	}
	rawB, rawC := hexList(ciphersSorted), partC(hexList(extsSorted))
	rawBO, rawCO := hexList(ciphers), partC(hexList(exts))

	return Fingerprint{
		JA4:   prefix + "_" + hash12(rawB, len(ciphersSorted)) + "_" + hash12(rawC, len(extsSorted)),
		JA4R:  prefix + "_" + rawB + "_" + rawC,
		JA4O:  prefix + "_" + hash12(rawBO, len(ciphers)) + "_" + hash12(rawCO, len(exts)),
		JA4RO: prefix + "_" + rawBO + "_" + rawCO,
	}
}

// versionCode picks the highest non-GREASE supported_versions entry when the
// extension is present, else the legacy version, as the specification says.
func (h *ClientHello) versionCode() string {
	v := h.LegacyVersion
	if h.HasSupportedVersions {
		if vs := withoutGREASE(h.SupportedVersions); len(vs) > 0 {
			v = slices.Max(vs)
		}
	}
	if c, ok := versionCodes[v]; ok {
		return c
	}
	return "00"
}

// alpnCode is the first and last character of the first offered ALPN value,
// or the first and last hex digit of that value when either end byte is not
// ASCII alphanumeric.
func alpnCode(alpn [][]byte) string {
	if len(alpn) == 0 || len(alpn[0]) == 0 {
		return "00"
	}
	v := alpn[0]
	first, last := v[0], v[len(v)-1]
	if isAlnum(first) && isAlnum(last) {
		return string([]byte{first, last})
	}
	hx := hex.EncodeToString(v)
	return string([]byte{hx[0], hx[len(hx)-1]})
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// count2 renders a count as two digits, capped at 99 as the spec requires.
func count2(n int) string {
	n = min(n, 99)
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

func withoutGREASE(vs []uint16) []uint16 {
	out := make([]uint16, 0, len(vs))
	for _, v := range vs {
		if !IsGREASE(v) {
			out = append(out, v)
		}
	}
	return out
}

func hexList(vs []uint16) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = hex.EncodeToString([]byte{byte(v >> 8), byte(v)})
	}
	return strings.Join(parts, ",")
}

// hash12 is the first 12 lower-case hex digits of sha256(s), or all zeros
// when the list s was built from had no entries.
func hash12(s string, entries int) string {
	if entries == 0 {
		return emptyHash
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}
