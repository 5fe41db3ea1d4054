package lua

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/verify/ja4"
	"github.com/applbuild/applbuild/verify/ja4/ja4test"
	"github.com/applbuild/applbuild/verify/testenv"
)

// runLua runs a script from testdata under lua5.4 with this directory on the
// module path, feeding it lines on stdin, and returns one output line per
// input line.
func runLua(t *testing.T, script string, lines []string, args ...string) []string {
	t.Helper()
	lua := testenv.RequireTool(t, "lua5.4")
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lua, append([]string{filepath.Join(dir, "testdata", script)}, args...)...)
	// No C module path: the module must run on plain Lua alone, as
	// HAProxy's embedded interpreter offers nothing more.
	cmd.Env = append(cmd.Environ(), "LUA_PATH="+filepath.Join(dir, "?.lua"), "LUA_CPATH=/nonexistent/?.so", "LUA_INIT=")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lua5.4 %s: %v\n%s", script, err, stderr.String())
	}
	var out []string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if len(out) != len(lines) {
		t.Fatalf("lua5.4 %s printed %d lines for %d inputs\nstderr: %s", script, len(out), len(lines), stderr.String())
	}
	return out
}

// goResult renders the Go reference's answer in the driver's output format.
func goResult(b []byte) string {
	fp, err := ja4.Compute(b)
	if err != nil {
		var te *ja4.TruncatedError
		if errors.As(err, &te) {
			return "ERR " + strconv.Itoa(te.Need)
		}
		return "ERR -"
	}
	return fmt.Sprintf("OK %s %s %s %s", fp.JA4, fp.JA4R, fp.JA4O, fp.JA4RO)
}

// luaVerdict strips the error message, which may be worded differently,
// keeping the outcome and, for truncation, the bytes needed.
func luaVerdict(line string) string {
	if strings.HasPrefix(line, "ERR ") {
		return "ERR " + strings.Fields(line)[1]
	}
	return line
}

type entry struct {
	name  string
	hello []byte
}

func hexLines(es []entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = hex.EncodeToString(e.hello)
	}
	return out
}

// variants are hellos exercising GREASE, ALPN and empty-list rules beyond
// the specification's own example.
func variants() []entry {
	mk := func(name string, h ja4test.Hello) entry { return entry{name, h.Bytes()} }
	base := ja4test.Hello{
		Ciphers: []uint16{0x3a3a, 0x1301, 0xc02b, 0x00ff}, ExtOrder: []uint16{0x0a0a, 0x0000, 0x0010, 0x000d, 0x002b, 0xfafa},
		ServerName: "v.example", SigAlgs: []uint16{0x5a5a, 0x0804, 0x0403}, SupportedVersions: []uint16{0x8a8a, 0x0304, 0x0303},
	}
	var out []entry
	for _, alpn := range [][][]byte{
		{[]byte("http/1.1"), []byte("h2")}, {[]byte("h2"), []byte("http/1.1")}, {[]byte("x")}, {{}},
		{{0xab}}, {{0xab, 0xcd}}, {{0x30, 0xab}}, {{0x30, 0x31, 0xab, 0xcd}}, {{0x30, 0xab, 0xcd, 0x31}},
	} {
		h := base
		h.ALPN = alpn
		out = append(out, mk(fmt.Sprintf("alpn %x", alpn), h))
	}
	noSigs := base
	noSigs.ExtOrder = []uint16{0x0000, 0x002b}
	out = append(out, mk("no signature_algorithms extension", noSigs))
	onlySNI := ja4test.Hello{Ciphers: []uint16{0x002f}, ExtOrder: []uint16{0x0000}, ServerName: "x"}
	out = append(out, mk("only SNI", onlySNI))
	legacy := ja4test.Hello{LegacyVersion: 0x0300, Ciphers: []uint16{0x000a}, NoExtensions: true}
	out = append(out, mk("SSL 3.0 without extensions", legacy))
	many := ja4test.Hello{}
	for i := 0; i < 130; i++ {
		many.Ciphers = append(many.Ciphers, uint16(0x0200+i))
		many.ExtOrder = append(many.ExtOrder, uint16(0x0300+i))
	}
	many.RecordSize = 64
	out = append(out, mk("counts over 99 in 64-byte records", many))
	dup := base
	dup.ExtOrder = append(append([]uint16{}, base.ExtOrder...), 0x0010, 0x000d)
	dup.ALPN = [][]byte{[]byte("h2")}
	out = append(out, mk("duplicate extensions", dup))
	return out
}

// TestLuaMatchesGo runs ja4.lua under lua5.4 over the specification's
// examples, rule variants, and hellos captured from curl, openssl s_client
// and Go crypto/tls on loopback, and requires exactly the fingerprints of
// the Go reference (JA4, JA4_r, JA4_o, JA4_ro).
func TestLuaMatchesGo(t *testing.T) {
	testenv.RequireTool(t, "lua5.4")
	var corpus []entry
	examples := ja4test.SpecExamples()
	for _, ex := range examples {
		corpus = append(corpus, entry{"spec: " + ex.Name, ex.Hello.Bytes()})
	}
	corpus = append(corpus, variants()...)
	for _, c := range ja4test.CaptureAll(t, ja4test.Clients()) {
		corpus = append(corpus, entry{"captured: " + c.Client.Name, c.Hello})
	}
	out := runLua(t, "ja4_driver.lua", hexLines(corpus))
	if embedded, err := Files.ReadFile("ja4.lua"); err != nil || len(embedded) == 0 {
		t.Errorf("ja4.lua is not in the embedded Files: %v", err)
	}
	for i, e := range corpus {
		want := goResult(e.hello)
		if !strings.HasPrefix(want, "OK ") {
			t.Fatalf("%s: the Go reference rejects it: %s", e.name, want)
		}
		if out[i] != want {
			t.Errorf("%s:\n lua %s\n  go %s", e.name, out[i], want)
		}
	}
	// The published values, checked on the Lua output directly too.
	for i, ex := range examples {
		f := strings.Fields(out[i])
		if ex.Want.JA4 != "" && f[1] != ex.Want.JA4 {
			t.Errorf("%s: lua JA4 %s, the specification says %s", ex.Name, f[1], ex.Want.JA4)
		}
		if ex.Want.JA4O != "" && f[3] != ex.Want.JA4O {
			t.Errorf("%s: lua JA4_o %s, the specification says %s", ex.Name, f[3], ex.Want.JA4O)
		}
	}
}

// TestLuaAgreesOnBrokenInput feeds both implementations every prefix of a
// real hello and thousands of deterministic mutations of hellos: they must
// agree on accepting or rejecting each input, on the fingerprints of what
// they accept, and on how many bytes a truncated hello still needs (which
// the HAProxy action uses to wait for the rest).
func TestLuaAgreesOnBrokenInput(t *testing.T) {
	testenv.RequireTool(t, "lua5.4")
	seeds := [][]byte{ja4test.SpecExamples()[0].Hello.Bytes(), ja4test.SpecExamples()[3].Hello.Bytes()}
	for _, v := range variants() {
		seeds = append(seeds, v.hello)
	}
	var corpus []entry
	for n := 0; n < len(seeds[1]); n++ {
		corpus = append(corpus, entry{fmt.Sprintf("prefix %d", n), seeds[1][:n]})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 4000; i++ {
		b := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for k := rng.IntN(3) + 1; k > 0; k-- {
			switch rng.IntN(4) {
			case 0: // overwrite a byte
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			case 1: // nudge a byte, which often hits a length field
				b[rng.IntN(len(b))] += byte(rng.IntN(3)) - 1
			case 2: // cut
				b = b[:rng.IntN(len(b)+1)]
			case 3: // append garbage
				b = append(b, byte(rng.Uint32()), byte(rng.Uint32()))
			}
			if len(b) == 0 {
				break
			}
		}
		corpus = append(corpus, entry{fmt.Sprintf("mutant %d", i), b})
	}
	out := runLua(t, "ja4_driver.lua", hexLines(corpus))
	accepted, truncated := 0, 0
	for i, e := range corpus {
		want := goResult(e.hello)
		if got := luaVerdict(out[i]); got != want {
			t.Errorf("%s (%x):\n lua %s\n  go %s", e.name, e.hello, out[i], want)
			continue
		}
		switch {
		case strings.HasPrefix(want, "OK "):
			accepted++
		case want != "ERR -":
			truncated++
		}
	}
	t.Logf("%d inputs: %d accepted, %d truncated, %d malformed", len(corpus), accepted, truncated, len(corpus)-accepted-truncated)
	if accepted == 0 || truncated == 0 || accepted+truncated == len(corpus) {
		t.Errorf("the corpus must mix accepted, truncated and malformed inputs")
	}
}

// TestLuaSHA256 checks the pure-Lua SHA-256 against crypto/sha256 across the
// padding boundaries (55, 56, 63, 64, 119, 120 bytes ...).
func TestLuaSHA256(t *testing.T) {
	var lines, want []string
	for n := 0; n <= 200; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*31 + n)
		}
		lines = append(lines, hex.EncodeToString(b))
		sum := sha256.Sum256(b)
		want = append(want, hex.EncodeToString(sum[:]))
	}
	out := runLua(t, "ja4_driver.lua", lines, "sha256")
	for n := range want {
		if out[n] != want[n] {
			t.Errorf("sha256 of %d bytes: lua %s, Go %s", n, out[n], want[n])
		}
	}
}

// TestGlueWithFakeHAProxyCore drives the HAProxy action through a stand-in
// for HAProxy's Lua runtime (HAProxy 3.2 cannot be installed on a Debian 12
// host): it must set sess.ja4/sess.ja4_r to the reference values, wait for
// the rest of a hello that is only partly buffered, mark garbage and
// abandoned hellos "unparsed" with a warning, and compute only once.
func TestGlueWithFakeHAProxyCore(t *testing.T) {
	ex := ja4test.SpecExamples()[3] // split over records
	hello := ex.Hello.Bytes()
	fp, err := ja4.Compute(hello)
	if err != nil {
		t.Fatal(err)
	}
	ok := fmt.Sprintf("ja4=%s ja4_r=%s", fp.JA4, fp.JA4R)
	tiny := ex.Hello
	tiny.RecordSize = 1
	tinyRecords := tiny.Bytes()
	trailing := append(append([]byte(nil), hello...), []byte("\x14\x03\x03\x00\x01\x01")...)
	cases := []struct {
		name, scenario string
		buffered       int
		in             []byte
		want           string
	}{
		{"whole hello buffered", "open", len(hello), hello, ok + " waits=0 warnings=0"},
		{"hello and a following record buffered", "open", len(trailing), trailing, ok + " waits=0 warnings=0"},
		// The first record only: for each missing record the action
		// waits once for its header and once for its payload.
		{"first record buffered", "open", 105, hello, ok + " waits=" + strconv.Itoa(2*((len(hello)+104)/105-1)) + " warnings=0"},
		{"handshake length reached but last record header missing", "open", len(hello) - 1, hello, ok + " waits=1 warnings=0"},
		{"one-byte records exceed the wait bound", "open", 6, tinyRecords, "ja4=unparsed ja4_r=nil waits=16 warnings=1"},
		{"client stops sending", "closed", 105, hello, "ja4=unparsed ja4_r=nil waits=0 warnings=1"},
		{"plain HTTP", "open", 18, []byte("GET / HTTP/1.1\r\n\r\n"), "ja4=unparsed ja4_r=nil waits=0 warnings=1"},
		{"computed once", "twice", len(hello), hello, "ja4=" + fp.JA4 + " ja4_r=kept waits=0 warnings=0"},
	}
	var lines []string
	for _, c := range cases {
		lines = append(lines, fmt.Sprintf("%s %d %x", c.scenario, c.buffered, c.in))
	}
	out := runLua(t, "fake_haproxy.lua", lines)
	for i, c := range cases {
		if !strings.HasPrefix(out[i], c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, out[i], c.want)
		}
	}
}
