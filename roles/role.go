// Package roles loads the role files (roles/<name>/role.yaml) that declare
// what an appliance image is made of: the Debian base, the apt sources and
// pins, and the packages. The files are embedded so the applbuild binary
// carries them; they are validated once here, into typed values that the
// builder trusts.
package roles

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed */role.yaml
var embedded embed.FS

// FullProfile names the complete package list of a role (its "packages"
// key). Profiles declared in a role file may not use this name.
const FullProfile = "full"

// Role is a validated role file.
type Role struct {
	// Name is the role's folder name, e.g. "gateway".
	Name string
	// File is where the role was read from, for error messages.
	File     string
	Base     Base
	Sources  []Source
	Pins     []Pin
	Packages []string
	// Profiles are named package lists that replace Packages when a smaller
	// tree is enough (the test harness's "test" profile).
	Profiles map[string][]string
}

// Base is the suite, mmdebstrap variant and architecture a tree is
// bootstrapped from.
type Base struct {
	Suite        string
	Variant      string
	Architecture string
}

// Source is one apt source: every suite in Suites is served from URIs with
// Components.
type Source struct {
	Name       string
	URIs       []string
	Suites     []string
	Components []string
	// CheckValidUntil is false for archives whose Release files are expired
	// snapshots (forky on the mirror, snapshot.debian.org); true by default.
	CheckValidUntil bool
	// Keyring is a keyring file on the build host that signs this source,
	// empty when the Debian archive keyring covers it.
	Keyring string
}

// Pin is one apt preferences stanza. Exactly one of Codename and Origin is
// set.
type Pin struct {
	Packages []string
	Codename string
	Origin   string
	Priority int
}

// PackageList returns the packages of the named profile; "" and FullProfile
// mean the role's full list.
func (r *Role) PackageList(profile string) ([]string, error) {
	if profile == "" || profile == FullProfile {
		return append([]string(nil), r.Packages...), nil
	}
	p, ok := r.Profiles[profile]
	if !ok {
		return nil, fmt.Errorf("role %s has no profile %q; valid profiles: %s", r.Name, profile, strings.Join(r.ProfileNames(), ", "))
	}
	return append([]string(nil), p...), nil
}

// ProfileNames lists the valid profile names of the role, FullProfile first.
func (r *Role) ProfileNames() []string {
	names := make([]string, 0, len(r.Profiles))
	for n := range r.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return append([]string{FullProfile}, names...)
}

// Names lists the roles embedded in the binary.
func Names() []string {
	dirs, err := fs.Glob(embedded, "*/role.yaml")
	if err != nil {
		// The pattern is a constant and valid.
		panic(err)
	}
	names := make([]string, 0, len(dirs))
	for _, d := range dirs {
		names = append(names, path.Dir(d))
	}
	sort.Strings(names)
	return names
}

// Load reads and validates the embedded role file of the named role.
func Load(name string) (*Role, error) {
	file := name + "/role.yaml"
	data, err := embedded.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("unknown role %q; valid roles: %s", name, strings.Join(Names(), ", "))
	}
	return Parse(name, "roles/"+file, data)
}

// rawRole mirrors the YAML layout; pointers tell "absent" from zero.
type rawRole struct {
	Base     rawBase             `yaml:"base"`
	Sources  []rawSource         `yaml:"sources"`
	Pins     []rawPin            `yaml:"pins"`
	Packages []string            `yaml:"packages"`
	Profiles map[string][]string `yaml:"profiles"`
}

type rawBase struct {
	Suite        string `yaml:"suite"`
	Variant      string `yaml:"variant"`
	Architecture string `yaml:"architecture"`
}

type rawSource struct {
	Name            string   `yaml:"name"`
	URIs            []string `yaml:"uris"`
	Suites          []string `yaml:"suites"`
	Components      []string `yaml:"components"`
	CheckValidUntil *bool    `yaml:"check_valid_until"`
	Keyring         string   `yaml:"keyring"`
}

type rawPin struct {
	Packages []string `yaml:"packages"`
	Codename string   `yaml:"codename"`
	Origin   string   `yaml:"origin"`
	Priority *int     `yaml:"priority"`
}

// sections names the YAML mappings for unknown-key errors, by the Go type
// yaml.v3 reports.
var sections = map[string]struct {
	name string
	typ  reflect.Type
}{
	"roles.rawRole":   {"the top level", reflect.TypeOf(rawRole{})},
	"roles.rawBase":   {"base", reflect.TypeOf(rawBase{})},
	"roles.rawSource": {"a source", reflect.TypeOf(rawSource{})},
	"roles.rawPin":    {"a pin", reflect.TypeOf(rawPin{})},
}

var unknownFieldRe = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)

// decodeError turns yaml.v3's messages into file:line ones, and says which
// keys are valid where it found an unknown one.
func decodeError(file string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var errs []error
	for _, msg := range te.Errors {
		if m := unknownFieldRe.FindStringSubmatch(msg); m != nil {
			if sec, ok := sections[m[3]]; ok {
				var keys []string
				for i := 0; i < sec.typ.NumField(); i++ {
					keys = append(keys, sec.typ.Field(i).Tag.Get("yaml"))
				}
				errs = append(errs, fmt.Errorf("%s:%s: unknown key %q in %s; valid keys: %s", file, m[1], m[2], sec.name, strings.Join(keys, ", ")))
				continue
			}
		}
		if line, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(line, "line ") {
			errs = append(errs, fmt.Errorf("%s:%s: %s", file, strings.TrimPrefix(line, "line "), rest))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s", file, msg))
	}
	return errors.Join(errs...)
}

// Variants are the mmdebstrap variants a role may use.
var Variants = []string{"extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard"}

// Architectures are the Debian architectures a role may target.
var Architectures = []string{"amd64", "arm64", "armhf", "i386", "ppc64el", "riscv64", "s390x"}

var (
	packageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	suiteRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	originRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

// Parse validates a role file's bytes. file names it in error messages.
func Parse(name, file string, data []byte) (*Role, error) {
	var raw rawRole
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty role file; it needs base, sources and packages", file)
		}
		return nil, decodeError(file, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	v := validator{file: file, doc: &doc}

	r := &Role{Name: name, File: file, Profiles: map[string][]string{}}
	r.Base = Base{Suite: raw.Base.Suite, Variant: raw.Base.Variant, Architecture: raw.Base.Architecture}
	if !suiteRe.MatchString(r.Base.Suite) {
		v.fail([]any{"base", "suite"}, "base.suite %q is not a suite name; give a codename such as trixie", r.Base.Suite)
	}
	if !contains(Variants, r.Base.Variant) {
		v.fail([]any{"base", "variant"}, "base.variant %q is not an mmdebstrap variant; valid: %s", r.Base.Variant, strings.Join(Variants, ", "))
	}
	if !contains(Architectures, r.Base.Architecture) {
		v.fail([]any{"base", "architecture"}, "base.architecture %q is not supported; valid: %s", r.Base.Architecture, strings.Join(Architectures, ", "))
	}

	if len(raw.Sources) == 0 {
		v.fail([]any{"sources"}, "sources: at least one apt source is needed")
	}
	seen := map[string]bool{}
	baseServed := false
	for i, s := range raw.Sources {
		at := func(k ...any) []any { return append([]any{"sources", i}, k...) }
		src := Source{Name: s.Name, URIs: s.URIs, Suites: s.Suites, Components: s.Components, CheckValidUntil: true, Keyring: s.Keyring}
		if s.CheckValidUntil != nil {
			src.CheckValidUntil = *s.CheckValidUntil
		}
		if !nameRe.MatchString(s.Name) {
			v.fail(at("name"), "sources[%d].name %q must be lower-case letters, digits and dashes", i, s.Name)
		} else if seen[s.Name] {
			v.fail(at("name"), "sources[%d].name %q is used twice; names must be unique", i, s.Name)
		}
		seen[s.Name] = true
		if len(s.URIs) == 0 {
			v.fail(at(), "sources[%d] (%s): uris is empty; give at least one archive URI", i, s.Name)
		}
		for j, u := range s.URIs {
			if err := checkURI(u); err != nil {
				v.fail(at("uris", j), "sources[%d].uris[%d]: %v", i, j, err)
			}
		}
		if len(s.Suites) == 0 {
			v.fail(at(), "sources[%d] (%s): suites is empty", i, s.Name)
		}
		for j, su := range s.Suites {
			if !suiteRe.MatchString(su) {
				v.fail(at("suites", j), "sources[%d].suites[%d] %q is not a suite name", i, j, su)
			}
			if su == r.Base.Suite {
				baseServed = true
			}
		}
		if len(s.Components) == 0 {
			v.fail(at(), "sources[%d] (%s): components is empty; usually [main]", i, s.Name)
		}
		for j, c := range s.Components {
			if !suiteRe.MatchString(c) {
				v.fail(at("components", j), "sources[%d].components[%d] %q is not a component name", i, j, c)
			}
		}
		if s.Keyring != "" && !path.IsAbs(s.Keyring) {
			v.fail(at("keyring"), "sources[%d].keyring %q must be an absolute path on the build host", i, s.Keyring)
		}
		r.Sources = append(r.Sources, src)
	}
	if len(raw.Sources) > 0 && !baseServed && r.Base.Suite != "" {
		v.fail([]any{"sources"}, "no source serves base.suite %q; add it to a source's suites", r.Base.Suite)
	}

	for i, p := range raw.Pins {
		at := func(k ...any) []any { return append([]any{"pins", i}, k...) }
		pin := Pin{Packages: p.Packages, Codename: p.Codename, Origin: p.Origin}
		if len(p.Packages) == 0 {
			v.fail(at(), "pins[%d]: packages is empty; give package names or \"*\"", i)
		}
		for j, pkg := range p.Packages {
			if pkg != "*" && !packageRe.MatchString(pkg) {
				v.fail(at("packages", j), "pins[%d].packages[%d] %q is not a package name or \"*\"", i, j, pkg)
			}
		}
		switch {
		case (p.Codename == "") == (p.Origin == ""):
			v.fail(at(), "pins[%d]: give exactly one of codename (a suite codename such as forky) or origin (an archive host)", i)
		case p.Codename != "" && !suiteRe.MatchString(p.Codename):
			v.fail(at("codename"), "pins[%d].codename %q is not a codename", i, p.Codename)
		case p.Origin != "" && !originRe.MatchString(p.Origin):
			v.fail(at("origin"), "pins[%d].origin %q is not a host name", i, p.Origin)
		}
		if p.Priority == nil || *p.Priority == 0 {
			v.fail(at(), "pins[%d]: priority is missing or 0; give e.g. 100 (only when asked for) or 990 (preferred)", i)
		} else {
			pin.Priority = *p.Priority
		}
		r.Pins = append(r.Pins, pin)
	}

	r.Packages = raw.Packages
	if len(r.Packages) == 0 {
		v.fail([]any{"packages"}, "packages is empty; list what the appliance needs at runtime")
	}
	v.packages([]any{"packages"}, "packages", r.Packages)
	for name, list := range raw.Profiles {
		if name == FullProfile {
			v.fail([]any{"profiles", name}, "profiles.%s: the name %q is reserved for the full package list", name, FullProfile)
		}
		if !nameRe.MatchString(name) {
			v.fail([]any{"profiles", name}, "profiles: %q must be lower-case letters, digits and dashes", name)
		}
		if len(list) == 0 {
			v.fail([]any{"profiles", name}, "profiles.%s is empty", name)
		}
		v.packages([]any{"profiles", name}, "profiles."+name, list)
		r.Profiles[name] = list
	}
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return r, nil
}

func checkURI(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%q is not a URI: %v", u, err)
	}
	switch p.Scheme {
	case "http", "https", "file", "mirror+http", "mirror+https", "mirror+file":
	default:
		return fmt.Errorf("%q: scheme must be http, https, file or mirror+...", u)
	}
	if p.Scheme != "file" && p.Host == "" {
		return fmt.Errorf("%q has no host", u)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validator collects every error of a file, each with the line of the node
// it is about, so one run shows all that needs fixing.
type validator struct {
	file string
	doc  *yaml.Node
	errs []error
}

func (v *validator) packages(at []any, field string, list []string) {
	dup := map[string]bool{}
	for j, pkg := range list {
		if !packageRe.MatchString(pkg) {
			v.fail(append(at, j), "%s[%d] %q is not a Debian package name", field, j, pkg)
		}
		if dup[pkg] {
			v.fail(append(at, j), "%s[%d] %q is listed twice", field, j, pkg)
		}
		dup[pkg] = true
	}
}

func (v *validator) fail(at []any, format string, args ...any) {
	line := v.line(at)
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		v.errs = append(v.errs, fmt.Errorf("%s:%d: %s", v.file, line, msg))
		return
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %s", v.file, msg))
}

// line finds the line of the node at a path of mapping keys (string) and
// sequence indexes (int); it returns the deepest line found, so a missing
// key points at its parent.
func (v *validator) line(at []any) int {
	n := v.doc
	if n == nil || len(n.Content) == 0 {
		return 0
	}
	n = n.Content[0]
	line := n.Line
	for _, step := range at {
		var next *yaml.Node
		switch k := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}
