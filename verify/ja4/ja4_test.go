package ja4_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/ja4/ja4test"
)

// wellFormed matches a JA4 of a TCP hello: a section, two 12-digit hashes.
var wellFormed = regexp.MustCompile(`^t(13|12|11|10|s3|s2|d1|d2|d3|00)[di][0-9]{2}[0-9]{2}[0-9a-zA-Z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$`)

func TestSpecExamples(t *testing.T) {
	for _, ex := range ja4test.SpecExamples() {
		t.Run(ex.Name, func(t *testing.T) {
			fp, err := ja4.Compute(ex.Hello.Bytes())
			if err != nil {
				t.Fatalf("parsing %v: %v", ex, err)
			}
			check := func(name, got, want string) {
				if want != "" && got != want {
					t.Errorf("%s\n got %s\nwant %s", name, got, want)
				}
			}
			check("JA4", fp.JA4, ex.Want.JA4)
			check("JA4_r", fp.JA4R, ex.Want.JA4R)
			check("JA4_o", fp.JA4O, ex.Want.JA4O)
			check("JA4_ro", fp.JA4RO, ex.Want.JA4RO)
			if !wellFormed.MatchString(fp.JA4) {
				t.Errorf("JA4 %q is not well-formed", fp.JA4)
			}
		})
	}
}

func TestGREASEIsIgnored(t *testing.T) {
	base := ja4test.Hello{
		Ciphers:           []uint16{0x1301, 0xc02b},
		ExtOrder:          []uint16{0x0000, 0x000d, 0x002b, 0x0033},
		ServerName:        "a.example",
		SigAlgs:           []uint16{0x0403, 0x0804},
		SupportedVersions: []uint16{0x0304, 0x0303},
	}
	plain, err := ja4.Compute(base.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if plain.JA4R != "t13d020400_1301,c02b_000d,002b,0033_0403,0804" {
		t.Fatalf("JA4_r of the GREASE-free hello is %s", plain.JA4R)
	}
	for _, g := range []uint16{0x0a0a, 0x1a1a, 0x2a2a, 0x3a3a, 0x4a4a, 0x5a5a, 0x6a6a, 0x7a7a, 0x8a8a, 0x9a9a, 0xaaaa, 0xbaba, 0xcaca, 0xdada, 0xeaea, 0xfafa} {
		if !ja4.IsGREASE(g) {
			t.Errorf("IsGREASE(0x%04x) = false", g)
		}
		h := base
		h.Ciphers = []uint16{g, 0x1301, g, 0xc02b}
		h.ExtOrder = []uint16{g, 0x0000, 0x000d, 0x002b, 0x0033, g ^ 0x1010}
		h.SigAlgs = []uint16{g, 0x0403, 0x0804}
		// A GREASE version is numerically above 0x0304 for 0x7a7a and
		// up: taking the maximum without removing it gives "00".
		h.SupportedVersions = []uint16{g, 0x0304, 0x0303}
		got, err := ja4.Compute(h.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if got != plain {
			t.Errorf("with GREASE 0x%04x:\n got %+v\nwant %+v", g, got, plain)
		}
	}
	for _, v := range []uint16{0x0a0b, 0x0b0a, 0x1a2a, 0x00ff, 0x5600, 0xfefe} {
		if ja4.IsGREASE(v) {
			t.Errorf("IsGREASE(0x%04x) = true, it is not a GREASE value", v)
		}
	}
	// SCSV values are not GREASE and must be counted and hashed.
	scsv := base
	scsv.Ciphers = []uint16{0x1301, 0xc02b, 0x00ff, 0x5600}
	fp, err := ja4.Compute(scsv.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fp.JA4R, "t13d040400_00ff,1301,5600,c02b_") {
		t.Errorf("SCSV ciphers: JA4_r is %s", fp.JA4R)
	}
}

func TestALPN(t *testing.T) {
	cases := []struct {
		name string
		alpn [][]byte
		ext  bool
		want string
	}{
		{"http/1.1 first", [][]byte{[]byte("http/1.1"), []byte("h2")}, true, "h1"},
		{"h2 first", [][]byte{[]byte("h2"), []byte("http/1.1")}, true, "h2"},
		{"h3 alone", [][]byte{[]byte("h3")}, true, "h3"},
		{"single character", [][]byte{[]byte("x")}, true, "xx"},
		{"no extension", nil, false, "00"},
		{"empty list", nil, true, "00"},
		{"empty first value", [][]byte{{}, []byte("h2")}, true, "00"},
		// technical_details/JA4.md, "ALPN Extension Value": the spec's
		// five examples for non-alphanumeric bytes.
		{"0xAB", [][]byte{{0xab}}, true, "ab"},
		{"0xAB 0xCD", [][]byte{{0xab, 0xcd}}, true, "ad"},
		{"0x30 0xAB", [][]byte{{0x30, 0xab}}, true, "3b"},
		{"0x30 0x31 0xAB 0xCD", [][]byte{{0x30, 0x31, 0xab, 0xcd}}, true, "3d"},
		{"0x30 0xAB 0xCD 0x31", [][]byte{{0x30, 0xab, 0xcd, 0x31}}, true, "01"},
		{"underscore ends", [][]byte{[]byte("_x1_")}, true, "5f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := ja4test.Hello{Ciphers: []uint16{0x1301}, ExtOrder: []uint16{0x002b}, SupportedVersions: []uint16{0x0304}, ALPN: c.alpn}
			if c.ext {
				h.ExtOrder = append(h.ExtOrder, 0x0010)
			}
			fp, err := ja4.Compute(h.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if got := fp.JA4[8:10]; got != c.want {
				t.Errorf("ALPN part of %s is %q, want %q", fp.JA4, got, c.want)
			}
		})
	}
}

func TestCountsCapAt99(t *testing.T) {
	h := ja4test.Hello{}
	for i := 0; i < 120; i++ {
		h.Ciphers = append(h.Ciphers, uint16(0x0100+i))
		h.ExtOrder = append(h.ExtOrder, uint16(0x0100+i))
	}
	fp, err := ja4.Compute(h.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fp.JA4, "t12i999900_") {
		t.Errorf("120 ciphers and extensions: JA4 is %s, want prefix t12i999900_", fp.JA4)
	}
	// All 120 are still hashed.
	if n := strings.Count(strings.Split(fp.JA4R, "_")[1], ",") + 1; n != 120 {
		t.Errorf("JA4_r lists %d ciphers, want 120", n)
	}
}

func TestVersion(t *testing.T) {
	cases := []struct {
		legacy   uint16
		versions []uint16 // nil: no supported_versions extension
		want     string
	}{
		{0x0303, []uint16{0x0304, 0x0303}, "13"},
		{0x0303, []uint16{0x0303, 0x0304}, "13"}, // highest, not first
		{0x0303, nil, "12"},
		{0x0302, nil, "11"},
		{0x0301, nil, "10"},
		{0x0300, nil, "s3"},
		{0x0301, []uint16{0x0303}, "12"}, // extension wins over legacy
		{0x0303, []uint16{0x7f1c}, "00"}, // TLS 1.3 draft: unknown
		{0x0303, []uint16{0x1a1a}, "12"}, // only GREASE: legacy version
		{0x0303, []uint16{0xfefd}, "d2"}, // DTLS code
		{0x0399, nil, "00"},              // unknown legacy
		{0x0303, []uint16{0x0304, 0xdada}, "13"},
	}
	for _, c := range cases {
		h := ja4test.Hello{LegacyVersion: c.legacy, Ciphers: []uint16{0x002f}}
		if c.versions != nil {
			h.ExtOrder = []uint16{0x002b}
			h.SupportedVersions = c.versions
		}
		fp, err := ja4.Compute(h.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if got := fp.JA4[1:3]; got != c.want {
			t.Errorf("legacy 0x%04x supported_versions %04x: version part %q, want %q (%s)", c.legacy, c.versions, got, c.want, fp.JA4)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := ja4test.SpecExamples()[0].Hello.Bytes()
	// Every proper prefix is truncated, and the error says how much input
	// is needed, never less than what is there.
	for n := 0; n < len(good); n++ {
		_, err := ja4.ParseClientHello(good[:n])
		var te *ja4.TruncatedError
		if !errors.As(err, &te) {
			t.Fatalf("prefix of %d bytes: error %v, want a *TruncatedError", n, err)
		}
		if te.Have != n || te.Need <= n || te.Need > len(good) {
			t.Fatalf("prefix of %d bytes: Need %d Have %d, want Have %d < Need <= %d", n, te.Need, te.Have, n, len(good))
		}
		if !strings.Contains(err.Error(), "bytes") {
			t.Fatalf("error %q does not say how many bytes", err)
		}
	}
	h, err := ja4.ParseClientHello(append(good, 0x17, 0x03, 0x03, 0x00, 0x01, 0x00))
	if err != nil {
		t.Fatalf("hello followed by another record: %v", err)
	}
	if h.WireLen != len(good) {
		t.Errorf("WireLen %d, want %d (the trailing record is not part of the hello)", h.WireLen, len(good))
	}

	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	// A cipher vector of odd length: the length byte sits after the record
	// and handshake headers, legacy_version, random and the session id.
	odd := ja4test.Hello{Ciphers: []uint16{0x1301, 0x1302}, NoExtensions: true}.Bytes()
	odd[5+4+2+32+1+32+1] = 3
	// The hello ends with the ALPN extension: list length, then the entry
	// [2 'h' '2']; claim a 3-byte entry.
	alpnBad := ja4test.Hello{Ciphers: []uint16{0x1301}, ExtOrder: []uint16{0x0010}, ALPN: [][]byte{[]byte("h2")}}.Bytes()
	alpnBad[len(alpnBad)-3] = 3
	// signature_algorithms with an odd list length (and a matching
	// extension length so only the list itself is malformed).
	sigBad := ja4test.Hello{Ciphers: []uint16{0x1301}, ExtOrder: []uint16{0x000d}, SigAlgs: []uint16{0x0403, 0x0804}}.Bytes()
	sigBad[len(sigBad)-5] = 3
	sigBad = sigBad[:len(sigBad)-1]
	sigBad[len(sigBad)-6]--  // extension data length
	sigBad[len(sigBad)-10]-- // extensions block length
	sigBad[8]--              // handshake length
	sigBad[4]--              // record length
	bad := []struct {
		name, in, want string
	}{
		{"plain HTTP", "GET / HTTP/1.1\r\n\r\n", "not a TLS handshake record"},
		{"SSLv2 hello", "\x80\x2e\x01\x00\x02", "not a TLS handshake record"},
		{"alert record", "\x15\x03\x03\x00\x02\x02\x28", "0x15"},
		{"server hello", string(mutate(func(b []byte) []byte { b[5] = 2; return b })), "type is 2"},
		{"zero-length record", "\x16\x03\x01\x00\x00", "declares 0 payload bytes"},
		{"oversized record", "\x16\x03\x01\x48\x01", "declares 18433 payload bytes"},
		{"odd cipher list", string(odd), "cipher_suites is 3 bytes"},
		{"bytes after extensions", string(mutate(func(b []byte) []byte {
			// Grow the handshake and record lengths by one and append a byte.
			b[4]++
			b[8]++
			return append(b, 0)
		})), "1 bytes follow the extensions block"},
		{"extension overruns block", string(mutate(func(b []byte) []byte {
			// The last extension (0x0015) claims one byte more than is left.
			b[len(b)-5]++
			return b
		})), "extension 0x0015 data needs 5 bytes"},
		{"ALPN entry overruns list", string(alpnBad), "ALPN protocol name needs 3 bytes"},
		{"odd signature_algorithms", string(sigBad), "signature_algorithms list is 3 bytes"},
	}
	for _, c := range bad {
		_, err := ja4.ParseClientHello([]byte(c.in))
		if err == nil {
			t.Errorf("%s: parsed without error", c.name)
			continue
		}
		var te *ja4.TruncatedError
		if errors.As(err, &te) {
			t.Errorf("%s: got a truncation error %v, the input is malformed, not short", c.name, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
}
