package rootfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/roles"
)

func gatewaySpec(t *testing.T, profile string) Spec {
	t.Helper()
	r, err := roles.Load("gateway")
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromRole(r, profile)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustHash(t *testing.T, s Spec, version string) string {
	t.Helper()
	h, err := s.hashWith(version)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 64 {
		t.Fatalf("hash %q is not 64 hex digits", h)
	}
	return h
}

func TestHashIsStableAndIgnoresPackageOrder(t *testing.T) {
	a := gatewaySpec(t, "test")
	b := gatewaySpec(t, "test")
	if mustHash(t, a, "mmdebstrap 1.3.5") != mustHash(t, b, "mmdebstrap 1.3.5") {
		t.Fatal("two specs from the same role file hash differently")
	}
	for i, j := 0, len(b.Packages)-1; i < j; i, j = i+1, j-1 {
		b.Packages[i], b.Packages[j] = b.Packages[j], b.Packages[i]
	}
	if mustHash(t, a, "v") != mustHash(t, b, "v") {
		t.Fatal("reordering --include packages changed the hash, though it does not change the tree")
	}
}

func TestHashChangesWithEveryInput(t *testing.T) {
	base := gatewaySpec(t, "test")
	ref := mustHash(t, base, "mmdebstrap 1.3.5")
	// Each mutation works on a deep enough copy that base stays as loaded.
	copySpec := func() Spec {
		s := base
		s.Packages = append([]string(nil), base.Packages...)
		s.Sources = nil
		for _, src := range base.Sources {
			src.URIs = append([]string(nil), src.URIs...)
			src.Suites = append([]string(nil), src.Suites...)
			src.Components = append([]string(nil), src.Components...)
			s.Sources = append(s.Sources, src)
		}
		s.Pins = nil
		for _, p := range base.Pins {
			p.Packages = append([]string(nil), p.Packages...)
			s.Pins = append(s.Pins, p)
		}
		s.AptOptions = append([]string(nil), base.AptOptions...)
		return s
	}
	cases := map[string]func(*Spec){
		"suite":             func(s *Spec) { s.Suite = "forky" },
		"variant":           func(s *Spec) { s.Variant = "minbase" },
		"architecture":      func(s *Spec) { s.Architecture = "arm64" },
		"package added":     func(s *Spec) { s.Packages = append(s.Packages, "curl") },
		"package removed":   func(s *Spec) { s.Packages = s.Packages[1:] },
		"apt option":        func(s *Spec) { s.AptOptions = append(s.AptOptions, `Apt::Install-Recommends "true"`) },
		"source uri":        func(s *Spec) { s.Sources[0].URIs[0] = "http://mirror.lan/debian" },
		"source suite":      func(s *Spec) { s.Sources[0].Suites = s.Sources[0].Suites[:1] },
		"source component":  func(s *Spec) { s.Sources[0].Components = append(s.Sources[0].Components, "contrib") },
		"check-valid-until": func(s *Spec) { s.Sources[0].CheckValidUntil = false },
		"source order":      func(s *Spec) { s.Sources[0], s.Sources[1] = s.Sources[1], s.Sources[0] },
		"pin priority":      func(s *Spec) { s.Pins[1].Priority = 500 },
		"pin packages":      func(s *Spec) { s.Pins[1].Packages = s.Pins[1].Packages[:1] },
		"pin codename":      func(s *Spec) { s.Pins[1].Codename = "sid" },
		"pin order":         func(s *Spec) { s.Pins[0], s.Pins[1] = s.Pins[1], s.Pins[0] },
	}
	seen := map[string]string{ref: "unchanged"}
	for name, mutate := range cases {
		s := copySpec()
		mutate(&s)
		h := mustHash(t, s, "mmdebstrap 1.3.5")
		if prev, dup := seen[h]; dup {
			t.Errorf("changing %s gives the same hash as %s", name, prev)
		}
		seen[h] = name
	}
	if mustHash(t, base, "mmdebstrap 1.3.6") == ref {
		t.Error("a different mmdebstrap version gives the same hash")
	}
	if mustHash(t, base, "mmdebstrap 1.3.5") != ref {
		t.Error("the mutations above changed the base spec")
	}
}

func TestHashCoversKeyringContents(t *testing.T) {
	key := filepath.Join(t.TempDir(), "haproxy.gpg")
	if err := os.WriteFile(key, []byte("key one"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := gatewaySpec(t, "test")
	s.Sources = append(s.Sources, Source{Name: "haproxy", URIs: []string{"http://haproxy.debian.net"}, Suites: []string{"trixie-backports-3.2"}, Components: []string{"main"}, CheckValidUntil: true, Keyring: key})
	h1 := mustHash(t, s, "v")
	if err := os.WriteFile(key, []byte("key two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if mustHash(t, s, "v") == h1 {
		t.Fatal("replacing the keyring file's contents did not change the hash")
	}
	os.Remove(key)
	if _, err := s.hashWith("v"); err == nil || !strings.Contains(err.Error(), "haproxy") {
		t.Fatalf("a missing keyring should be an error naming the source, got %v", err)
	}
}

func TestSourcesListTurnsOffValidUntilOnlyWhereAsked(t *testing.T) {
	got := gatewaySpec(t, "test").SourcesList()
	want := []string{
		"deb http://deb.debian.org/debian trixie main",
		"deb http://deb.debian.org/debian trixie-updates main",
		"deb http://deb.debian.org/debian-security trixie-security main",
		"deb [check-valid-until=no] http://deb.debian.org/debian forky main",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPreferencesPinForkyLowExceptHAProxy(t *testing.T) {
	got := gatewaySpec(t, "").Preferences()
	want := `Package: *
Pin: release n=forky
Pin-Priority: 100

Package: haproxy libpcre2-8-0
Pin: release n=forky
Pin-Priority: 990
`
	if got != want {
		t.Fatalf("preferences:\n%s\nwant:\n%s", got, want)
	}
	s := Spec{Pins: []Pin{{Packages: []string{"haproxy"}, Origin: "haproxy.debian.net", Priority: 700}}}
	if got := s.Preferences(); !strings.Contains(got, "Pin: origin \"haproxy.debian.net\"\n") {
		t.Fatalf("an origin pin renders as %q", got)
	}
}

func TestArgsUploadPinsAndKeepValidUntilPerSource(t *testing.T) {
	s := gatewaySpec(t, "test")
	s.Sources[2].Keyring = "/srv/keys/forky.asc"
	args := s.args()
	joined := strings.Join(args, "\n")
	for _, want := range []string{
		"--variant=apt", "--architectures=amd64", "--include=haproxy,lua5.4,ca-certificates",
		"--setup-hook=upload applbuild.pref /etc/apt/preferences.d/applbuild.pref",
		"--setup-hook=upload applbuild-forky.asc /etc/apt/trusted.gpg.d/applbuild-forky.asc",
		"--customize-hook=download /var/lib/dpkg/status status",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("mmdebstrap arguments lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "Check-Valid-Until") {
		t.Errorf("the expiry check is turned off globally, not per source:\n%s", joined)
	}
	// Suite, target, then the sources as mirrors.
	i := indexOf(args, "trixie")
	if i < 0 || args[i+1] != "rootfs.tar" || args[len(args)-1] != "deb [check-valid-until=no] http://deb.debian.org/debian forky main" {
		t.Errorf("positional arguments are not suite, target, sources: %q", args)
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestMirrors(t *testing.T) {
	s := gatewaySpec(t, "test")
	ms, err := ParseMirrors("http://apt-cache.lan:3142/deb.debian.org/")
	if err != nil {
		t.Fatal(err)
	}
	got := s.WithMirrors(ms).SourcesList()
	if got[0] != "deb http://apt-cache.lan:3142/deb.debian.org/debian trixie main" ||
		got[2] != "deb http://apt-cache.lan:3142/deb.debian.org/debian-security trixie-security main" {
		t.Fatalf("a bare mirror did not replace http://deb.debian.org: %q", got)
	}
	if s.SourcesList()[0] != "deb http://deb.debian.org/debian trixie main" {
		t.Fatal("WithMirrors changed the spec it was called on")
	}
	ms, err = ParseMirrors("http://deb.debian.org/debian-security=http://sec.lan/ds, http://deb.debian.org/debian=file:///srv/debian")
	if err != nil {
		t.Fatal(err)
	}
	got = s.WithMirrors(ms).SourcesList()
	if got[0] != "deb file:///srv/debian trixie main" || got[2] != "deb http://sec.lan/ds trixie-security main" {
		t.Fatalf("prefix pairs applied wrongly: %q", got)
	}
	if _, err := ParseMirrors("http://a=nonsense"); err == nil || !strings.Contains(err.Error(), "FROM=TO") {
		t.Fatalf("a malformed pair should be rejected with the valid form, got %v", err)
	}
}

func TestValidateRejectsHandMadeNonsense(t *testing.T) {
	s := gatewaySpec(t, "test")
	s.Packages = append(s.Packages, "curl,wget")
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "curl,wget") {
		t.Fatalf("a package with a comma would split the --include list; got %v", err)
	}
	if err := (Spec{}).Validate(); err == nil || !strings.Contains(err.Error(), "Suite, Variant, Architecture, Sources") {
		t.Fatalf("an empty spec should name what is missing, got %v", err)
	}
}

func TestParseStatusKeepsInstalledOnly(t *testing.T) {
	status := `Package: haproxy
Status: install ok installed
Architecture: amd64
Version: 3.2.26-1
Description: fast and reliable
 load balancing reverse proxy

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 13.8
`
	got, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{"base-files", "13.8", "amd64"}, {"haproxy", "3.2.26-1", "amd64"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
