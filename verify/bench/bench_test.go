package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/applbuild/applbuild/verify"
	"github.com/applbuild/applbuild/verify/testenv"
)

func TestMedianOddEvenAndEmpty(t *testing.T) {
	for _, tc := range []struct {
		in   Seconds
		want float64
	}{{nil, 0}, {Seconds{7}, 7}, {Seconds{9, 1, 5}, 5}, {Seconds{4, 1, 3, 2}, 2.5}} {
		if got := tc.in.Median(); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The lines `go test -bench` prints, as in a real JA4 run.
func TestParseGoBenchReadsEveryMetricOfEachCount(t *testing.T) {
	out := `goos: linux
BenchmarkJA4HandshakeCost
    bench_test.go:87: rounds off [738.5 431.5]
BenchmarkJA4HandshakeCost-2   	       1	32162386185 ns/op	       694.0 off-handshakes/s	       523.0 on-handshakes/s	         0.7536 on/off
BenchmarkJA4HandshakeCost-2   	       1	32000000000 ns/op	       700.0 off-handshakes/s	       690.0 on-handshakes/s	         0.9857 on/off
BenchmarkOther-2   	       1	5 ns/op
PASS
`
	m := ParseGoBench(out, "BenchmarkJA4HandshakeCost")
	if got := m["on/off"]; len(got) != 2 || got[0] != 0.7536 || got[1] != 0.9857 {
		t.Errorf("on/off = %v", got)
	}
	if got := m["ns/op"]; len(got) != 2 {
		t.Errorf("ns/op = %v, want the two runs of this benchmark only", got)
	}
}

func TestRatiosPairBootsOfTheSameRoundAndSkipFailures(t *testing.T) {
	a := []BootRun{{Total: 100}, {Total: 50}, {Total: 80}}
	b := []BootRun{{Total: 110}, {Error: "hang"}, {Total: 120}}
	got := Ratios(b, a)
	if len(got) != 2 || got[0] != 1.1 || got[1] != 1.5 {
		t.Errorf("Ratios = %v, want [1.1 1.5]", got)
	}
}

func TestAnalyseFindsSlowUnitsGapsAndLandmarks(t *testing.T) {
	lines := []ConsoleLine{
		{0.5, "BdsDxe: loading Boot0001 \"UEFI Misc Device\""},
		{3, "[    0.000000] Linux version 6.12.0 (debian-kernel@lists.debian.org)"},
		{20, "Welcome to Debian GNU/Linux 13 (trixie)!"},
		{21, "         Starting systemd-networkd-wait-online.service - Wait for Network to be Configured..."},
		{22, "         Starting ssh.service - OpenBSD Secure Shell server..."},
		{23.5, "[  OK  ] Started ssh.service - OpenBSD Secure Shell server."},
		{45, "[  OK  ] Finished systemd-networkd-wait-online.service - Wait for Network to be Configured."},
		{46, "APPLIANCE-READY host=gw"},
	}
	tl := Analyse(lines)
	if len(tl.Units) != 2 || !strings.HasPrefix(tl.Units[0].Unit, "systemd-networkd-wait-online") || tl.Units[0].Seconds != 24 {
		t.Errorf("units = %+v, want wait-online first at 24 s", tl.Units)
	}
	if len(tl.Gaps) == 0 || tl.Gaps[0].Seconds != 21.5 || !strings.Contains(tl.Gaps[0].After, "wait-online") {
		t.Errorf("gaps = %+v, want the 21.5 s silence before wait-online finished first", tl.Gaps)
	}
	if cuts := Cuts(tl); len(cuts) != 2 || !strings.Contains(cuts[0], "--any") || !strings.Contains(cuts[1], "keep") {
		t.Errorf("cuts = %q, want the wait-online advice, then ssh kept", cuts)
	}
	var names []string
	for _, p := range tl.Phases {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "firmware: boot entry,kernel banner,systemd on real root,appliance ready" {
		t.Errorf("phases = %s", got)
	}
}

// The recorder timestamps lines as they are appended to a console file.
func TestConsoleRecorderTimestampsLinesAsWritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	r := recordConsole(p)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("first\n")
	time.Sleep(700 * time.Millisecond)
	f.WriteString("\x1b[0;32msecond\x1b[0m\r\nthird without newline")
	time.Sleep(500 * time.Millisecond)
	f.Close()
	lines := r.stop()
	if len(lines) != 2 || lines[0].Text != "first" || lines[1].Text != "second" {
		t.Fatalf("lines = %+v, want first and second (clean, the unfinished line held back)", lines)
	}
	if d := lines[1].At - lines[0].At; d < 0.4 {
		t.Errorf("second came %.2fs after first; want about 0.7s", d)
	}
}

// The site the boot benchmark seeds is valid and its ISO reads back as the
// gateway with the host backend, and the analysis key is the operator's.
func TestBenchSiteSeedIsAValidGatewaySeed(t *testing.T) {
	testenv.RequireTool(t, "ssh-keygen")
	dir := t.TempDir()
	key, pub, err := benchKey(context.Background(), dir, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key %s: %v, mode %v; ssh refuses a key others can read", key, err, fi.Mode())
	}
	iso, netcfg, err := siteSeed(dir, 8443, pub)
	if err != nil {
		t.Fatal(err)
	}
	s, err := verify.ReadSeed(iso)
	if err != nil {
		t.Fatal(err)
	}
	if s.SSHUser == "" || len(s.SSHKeys) != 1 || s.SSHKeys[0] != pub {
		t.Errorf("the seed's operator %q has keys %q; want only the analysis key %q", s.SSHUser, s.SSHKeys, pub)
	}
	if s.Hostname != "gwbench" || s.Site.Gateway == nil || s.MAC != "52:54:00:0a:00:0f" {
		t.Errorf("seed: hostname %q, gateway %v, MAC %q", s.Hostname, s.Site.Gateway != nil, s.MAC)
	}
	if !strings.Contains(string(netcfg), "10.0.2.15") {
		t.Errorf("network-config lacks the guest address:\n%s", netcfg)
	}
	inst, err := installSeed(dir, 8443, netcfg)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(inst); err != nil || fi.Size() == 0 {
		t.Fatalf("install seed: %v", err)
	}
}

func TestMarkdownJudgesTargetsAndSaysWhatIsMissing(t *testing.T) {
	r := &Results{Generated: "2026-11-22T06:00:00Z", Command: "applbuild-bench", Machine: Machine{Cores: 2, Accel: "tcg"},
		Build: &BuildResult{Cold: Seconds{200}, RoleChange: Seconds{70, 50, 90}, Sizes: Sizes{QCOW2Bytes: 300e6}},
		Boot:  &BootResult{Floor: []BootRun{{Total: 100}}, Seeded: []BootRun{{Total: 110}}, Install: []BootRun{{Total: 400}}}}
	md := Markdown(r)
	for _, want := range []string{
		"| gateway build, cold cache | 200 s | ≤ 300 s | met | 1 |",
		"| gateway build, role change | 70.0 s | ≤ 60 s | **missed** | 3 |",
		"| gateway build, no change | not measured |",
		"| gateway qcow2 size | 300 MB | ≤ 250 MB | **missed** |",
		"| boot: seeded / no-seed floor (b/a) | 1.10 | ≤ 1.2 | met |",
		"| boot: install-at-first-boot / seeded (c/b) | 3.64 | ≥ 3 | met |",
		"| seed ISO per VM | not measured |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("document lacks %q", want)
		}
	}
}

// The guest's own analysis reaches the document, bounded, and a failed
// analysis says why instead of vanishing.
func TestMarkdownShowsTheGuestAnalysis(t *testing.T) {
	var blame []string
	for i := 50; i > 0; i-- {
		blame = append(blame, fmt.Sprintf("%d.000s unit%d.service", i, i))
	}
	r := &Results{Boot: &BootResult{Seeded: []BootRun{{Total: 90}}, Where: &Timeline{Guest: []GuestReport{
		{Command: "systemd-analyze blame --no-pager", Output: strings.Join(blame, "\n") + "\n"},
	}}}}
	md := Markdown(r)
	for _, want := range []string{"`systemd-analyze blame --no-pager` (first 40 of 50 lines):", "50.000s unit50.service", "11.000s unit11.service"} {
		if !strings.Contains(md, want) {
			t.Errorf("document lacks %q", want)
		}
	}
	if strings.Contains(md, "10.000s unit10.service") {
		t.Error("the document shows more than 40 lines of the blame")
	}
	r.Boot.Where = &Timeline{GuestError: "in the guest: ssh: connection refused"}
	if md := Markdown(r); !strings.Contains(md, "**The analysis in the guest failed:** in the guest: ssh: connection refused") {
		t.Error("a failed guest analysis is not reported")
	}
}
