package ja4_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/ja4/ja4test"
)

// TestRealClients captures hellos of Go crypto/tls, curl and openssl
// s_client on loopback through a Recorder and checks the fingerprints
// against what each client was configured to send, and against the
// ClientHello as crypto/tls on the server side parsed it.
func TestRealClients(t *testing.T) {
	caps := ja4test.CaptureAll(t, ja4test.Clients())
	for _, c := range caps {
		t.Run(c.Client.Name, func(t *testing.T) {
			h, err := ja4.ParseClientHello(c.Hello)
			if err != nil {
				t.Fatalf("parsing the captured hello (%d bytes): %v", len(c.Hello), err)
			}
			if h.WireLen != len(c.Hello) {
				t.Errorf("hello parsed %d of %d captured bytes", h.WireLen, len(c.Hello))
			}
			fp := h.JA4()
			t.Logf("%s: %s (%d bytes)", c.Client.Name, fp.JA4, len(c.Hello))
			if !wellFormed.MatchString(fp.JA4) {
				t.Errorf("JA4 %q is not well-formed", fp.JA4)
			}
			e := c.Client.Expect
			if got := fp.JA4[1:3]; got != e.Version {
				t.Errorf("version part %q, the client was configured for %q (%s)", got, e.Version, fp.JA4)
			}
			if got := fp.JA4[3:4]; got != e.SNI {
				t.Errorf("SNI part %q, want %q (server name %q)", got, e.SNI, h.ServerName)
			}
			if got := fp.JA4[8:10]; got != e.ALPN {
				t.Errorf("ALPN part %q, want %q (offered %q)", got, e.ALPN, h.ALPN)
			}
			if e.SNI == "d" && h.ServerName != ja4test.ServerName {
				t.Errorf("server name %q, want %q", h.ServerName, ja4test.ServerName)
			}
			if e.Ciphers != nil {
				var offered []uint16
				for _, cs := range h.CipherSuites {
					if !ja4.IsGREASE(cs) && cs != 0x00ff {
						offered = append(offered, cs)
					}
				}
				slices.Sort(offered)
				want := slices.Sorted(slices.Values(e.Ciphers))
				if !slices.Equal(offered, want) {
					t.Errorf("offered cipher suites %04x, the client was configured with %04x", offered, want)
				}
				nonGREASE := 0
				for _, cs := range h.CipherSuites {
					if !ja4.IsGREASE(cs) {
						nonGREASE++
					}
				}
				if got, want := fp.JA4[4:6], fmt.Sprintf("%02d", nonGREASE); got != want {
					t.Errorf("cipher count part %q, want %q", got, want)
				}
			}
			if c.Client.Tool == "curl" && len(c.Hello) <= 128 {
				t.Errorf("curl's hello is %d bytes; a real one is well over 128", len(c.Hello))
			}
			// crypto/tls parsed the same hello independently on the
			// server; rendering its view must give the same fingerprints.
			if sv := c.Server.Hello().JA4(); sv != fp {
				t.Errorf("server-side view differs from the wire bytes:\nserver %+v\n  wire %+v", sv, fp)
			}
		})
	}
	// The matrix must exercise distinct hellos, or the assertions above
	// prove less than they seem to.
	seen := map[string]bool{}
	for _, c := range caps {
		fp, _ := ja4.Compute(c.Hello)
		seen[fp.JA4] = true
	}
	if len(seen) < len(caps)/2 {
		t.Errorf("only %d distinct fingerprints from %d clients", len(seen), len(caps))
	}
	if t.Failed() {
		for _, c := range caps {
			t.Logf("%s hello: %x", c.Client.Name, c.Hello)
		}
	}
}
