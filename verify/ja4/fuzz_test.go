package ja4_test

import (
	"errors"
	"testing"

	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/ja4/ja4test"
)

// FuzzParseClientHello feeds arbitrary bytes to the parser: it must never
// panic, a truncation error must ask for more input than it has, and any
// hello it accepts must render a fingerprint and re-parse identically from
// just its own records.
func FuzzParseClientHello(f *testing.F) {
	for _, ex := range ja4test.SpecExamples() {
		f.Add(ex.Hello.Bytes())
	}
	f.Add([]byte("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ja4.ParseClientHello(b)
		if err != nil {
			var te *ja4.TruncatedError
			if errors.As(err, &te) && (te.Need <= te.Have || te.Have != len(b)) {
				t.Fatalf("truncation error with Need %d Have %d for %d bytes", te.Need, te.Have, len(b))
			}
			return
		}
		if h.WireLen <= 0 || h.WireLen > len(b) {
			t.Fatalf("WireLen %d outside the %d input bytes", h.WireLen, len(b))
		}
		fp := h.JA4()
		again, err := ja4.Compute(b[:h.WireLen])
		if err != nil || again != fp {
			t.Fatalf("the hello's own records give %+v, %v; the full input gave %+v", again, err, fp)
		}
	})
}
