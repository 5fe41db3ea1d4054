package roles

import (
	"reflect"
	"strings"
	"testing"
)

func TestGatewayRole(t *testing.T) {
	r, err := Load("gateway")
	if err != nil {
		t.Fatal(err)
	}
	if r.Base != (Base{Suite: "trixie", Variant: "apt", Architecture: "amd64"}) {
		t.Errorf("base = %+v", r.Base)
	}
	valid := map[string]bool{}
	for _, s := range r.Sources {
		valid[s.Name] = s.CheckValidUntil
	}
	if want := map[string]bool{"trixie": true, "trixie-security": true, "forky": false}; !reflect.DeepEqual(valid, want) {
		t.Errorf("sources and their Valid-Until checks = %v, want %v (off for forky only)", valid, want)
	}
	if len(r.Pins) != 2 || r.Pins[0].Priority != 100 || r.Pins[1].Priority != 990 ||
		!reflect.DeepEqual(r.Pins[1].Packages, []string{"haproxy", "libpcre2-8-0"}) || r.Pins[1].Codename != "forky" {
		t.Errorf("pins = %+v, want forky at 100 and haproxy, libpcre2-8-0 from forky at 990", r.Pins)
	}
	full, err := r.PackageList("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"haproxy", "lua5.4", "keepalived", "nftables", "ca-certificates", "openssh-server", "cloud-init", "systemd-sysv", "linux-image-cloud-amd64", "shim-signed", "grub-efi-amd64-signed", "e2fsprogs"} {
		if !contains(full, p) {
			t.Errorf("the gateway's full package list lacks %s", p)
		}
	}
	test, err := r.PackageList("test")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(test, "haproxy") || contains(test, "linux-image-cloud-amd64") || len(test) >= len(full) {
		t.Errorf("the test profile %v should be a small list with haproxy and no kernel", test)
	}
	if _, err := r.PackageList("nope"); err == nil || !strings.Contains(err.Error(), "valid profiles: full, test") {
		t.Errorf("an unknown profile should name the valid ones, got %v", err)
	}
	if !contains(Names(), "gateway") {
		t.Errorf("Names() = %v lacks gateway", Names())
	}
	if _, err := Load("toaster"); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Errorf("an unknown role should list the valid ones, got %v", err)
	}
}

const minimal = `base:
  suite: trixie
  variant: apt
  architecture: amd64
sources:
  - name: trixie
    uris: [http://deb.debian.org/debian]
    suites: [trixie]
    components: [main]
packages: [haproxy]
`

func TestParseMinimalDefaultsValidUntilOn(t *testing.T) {
	r, err := Parse("x", "x/role.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Sources[0].CheckValidUntil {
		t.Error("a source without check_valid_until must keep the expiry check on")
	}
}

func TestParseErrorsNameFileLineAndValidValues(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", strings.Replace(minimal, "  variant: apt\n", "  variant: apt\n  flavour: vanilla\n", 1),
			[]string{"x/role.yaml:4:", `unknown key "flavour" in base; valid keys: suite, variant, architecture`}},
		{"bad variant", strings.Replace(minimal, "variant: apt", "variant: fat", 1),
			[]string{"x/role.yaml:3:", "base.variant \"fat\"", "minbase"}},
		{"bad architecture", strings.Replace(minimal, "amd64", "x86", 1),
			[]string{"x/role.yaml:4:", "arm64"}},
		{"bad package", strings.Replace(minimal, "packages: [haproxy]", "packages:\n  - haproxy\n  - Bad_Name", 1),
			[]string{"x/role.yaml:12:", "packages[1] \"Bad_Name\""}},
		{"duplicate package", strings.Replace(minimal, "[haproxy]", "[haproxy, haproxy]", 1),
			[]string{"x/role.yaml:10:", "listed twice"}},
		{"bad uri", strings.Replace(minimal, "http://deb.debian.org/debian", "ftp://x/debian", 1),
			[]string{"x/role.yaml:7:", "scheme must be"}},
		{"base suite not served", strings.Replace(minimal, "suites: [trixie]", "suites: [forky]", 1),
			[]string{"no source serves base.suite \"trixie\""}},
		{"pin with codename and origin", minimal + "pins:\n  - packages: [haproxy]\n    codename: forky\n    origin: haproxy.debian.net\n    priority: 990\n",
			[]string{"x/role.yaml:12:", "exactly one of codename"}},
		{"pin without priority", minimal + "pins:\n  - packages: [\"*\"]\n    codename: forky\n",
			[]string{"pins[0]: priority is missing"}},
		{"reserved profile", minimal + "profiles:\n  full: [haproxy]\n",
			[]string{"x/role.yaml:12:", "reserved"}},
		{"wrong type", strings.Replace(minimal, "packages: [haproxy]", "packages: haproxy", 1),
			[]string{"x/role.yaml:10:", "cannot unmarshal"}},
		{"empty", "", []string{"empty role file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("x", "x/role.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	y := strings.Replace(strings.Replace(minimal, "variant: apt", "variant: fat", 1), "amd64", "x86", 1)
	_, err := Parse("x", "x/role.yaml", []byte(y))
	if err == nil || !strings.Contains(err.Error(), "base.variant") || !strings.Contains(err.Error(), "base.architecture") {
		t.Fatalf("want both the variant and the architecture reported, got %v", err)
	}
}
