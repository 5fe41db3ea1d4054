// Package rootfs assembles a role's root filesystem with mmdebstrap into a
// tarball, cached by the hash of everything that decides its contents, and
// extracts it into a tree that programs can be run from in a chroot.
package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/applbuild/applbuild/roles"
)

// Source is one apt source of a tree; see roles.Source.
type Source = roles.Source

// Pin is one apt preferences stanza; see roles.Pin.
type Pin = roles.Pin

// Spec is everything mmdebstrap is told to build a tree.
type Spec struct {
	// Suite is the suite the Essential set and variant priorities come from.
	Suite string
	// Variant is the mmdebstrap variant, e.g. "apt".
	Variant string
	// Architecture is the Debian architecture, e.g. "amd64".
	Architecture string
	Sources      []Source
	Pins         []Pin
	Packages     []string
	// AptOptions are passed to mmdebstrap as --aptopt and so stay in the
	// tree's /etc/apt/apt.conf.d/99mmdebstrap.
	AptOptions []string
}

// FromRole turns a role file and one of its profiles (see
// roles.Role.PackageList) into a Spec.
func FromRole(r *roles.Role, profile string) (Spec, error) {
	pkgs, err := r.PackageList(profile)
	if err != nil {
		return Spec{}, err
	}
	s := Spec{
		Suite:        r.Base.Suite,
		Variant:      r.Base.Variant,
		Architecture: r.Base.Architecture,
		Packages:     pkgs,
	}
	for _, src := range r.Sources {
		src.URIs = append([]string(nil), src.URIs...)
		s.Sources = append(s.Sources, src)
	}
	s.Pins = append(s.Pins, r.Pins...)
	return s, nil
}

// Validate reports a Spec that mmdebstrap could not build. Specs made by
// FromRole from a loaded role are valid; this guards hand-made ones.
func (s Spec) Validate() error {
	var missing []string
	if s.Suite == "" {
		missing = append(missing, "Suite")
	}
	if s.Variant == "" {
		missing = append(missing, "Variant")
	}
	if s.Architecture == "" {
		missing = append(missing, "Architecture")
	}
	if len(s.Sources) == 0 {
		missing = append(missing, "Sources")
	}
	if len(missing) > 0 {
		return fmt.Errorf("rootfs spec is missing %s", strings.Join(missing, ", "))
	}
	for i, src := range s.Sources {
		if len(src.URIs) == 0 || len(src.Suites) == 0 || len(src.Components) == 0 {
			return fmt.Errorf("rootfs spec source %d (%s) needs URIs, Suites and Components", i, src.Name)
		}
		for _, f := range append(append(append([]string{}, src.URIs...), src.Suites...), src.Components...) {
			if f == "" || strings.ContainsAny(f, " \t\n[]") {
				return fmt.Errorf("rootfs spec source %d (%s): %q may not be empty or hold spaces or brackets", i, src.Name, f)
			}
		}
	}
	for _, p := range s.Packages {
		if p == "" || strings.ContainsAny(p, ", \t\n") {
			return fmt.Errorf("rootfs spec package %q may not be empty or hold commas or spaces", p)
		}
	}
	for i, p := range s.Pins {
		if (p.Codename == "") == (p.Origin == "") || len(p.Packages) == 0 || p.Priority == 0 {
			return fmt.Errorf("rootfs spec pin %d needs packages, a priority and exactly one of codename and origin", i)
		}
	}
	return nil
}

// SourcesList renders the sources as one-line apt entries, one per URI and
// suite. The Release expiry check is turned off only on the sources that
// ask for it, so a stale current suite is still caught.
func (s Spec) SourcesList() []string {
	var lines []string
	for _, src := range s.Sources {
		opts := ""
		if !src.CheckValidUntil {
			opts = "[check-valid-until=no] "
		}
		for _, u := range src.URIs {
			for _, suite := range src.Suites {
				lines = append(lines, fmt.Sprintf("deb %s%s %s %s", opts, u, suite, strings.Join(src.Components, " ")))
			}
		}
	}
	return lines
}

// Preferences renders the pins as an apt preferences file, stanzas in the
// order given (apt takes the first specific pin that matches a package).
func (s Spec) Preferences() string {
	var b strings.Builder
	for i, p := range s.Pins {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Package: %s\n", strings.Join(p.Packages, " "))
		if p.Codename != "" {
			fmt.Fprintf(&b, "Pin: release n=%s\n", p.Codename)
		} else {
			fmt.Fprintf(&b, "Pin: origin \"%s\"\n", p.Origin)
		}
		fmt.Fprintf(&b, "Pin-Priority: %d\n", p.Priority)
	}
	return b.String()
}

// hashFormat changes whenever the way a Spec becomes a tree changes (hooks,
// file layout), so old cache entries are not taken for new ones.
const hashFormat = 1

// Hash is the cache key of the tree the Spec builds: a SHA-256 over the
// spec, the contents of any keyring it names and the mmdebstrap version.
// The package order does not change the tree and so not the hash.
func (s Spec) Hash() (string, error) {
	v, err := mmdebstrapVersion()
	if err != nil {
		return "", err
	}
	return s.hashWith(v)
}

func (s Spec) hashWith(mmdebstrap string) (string, error) {
	pkgs := append([]string(nil), s.Packages...)
	sort.Strings(pkgs)
	keyrings := map[string]string{}
	for _, src := range s.Sources {
		if src.Keyring == "" {
			continue
		}
		sum, err := fileSHA256(src.Keyring)
		if err != nil {
			return "", fmt.Errorf("keyring of source %s: %w", src.Name, err)
		}
		keyrings[src.Keyring] = sum
	}
	doc := struct {
		Format     int
		Mmdebstrap string
		Spec       Spec
		Packages   []string
		Keyrings   map[string]string
	}{hashFormat, mmdebstrap, s, pkgs, keyrings}
	doc.Spec.Packages = nil
	data, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encoding rootfs spec for its hash: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// keyringName is where a source's keyring goes in the tree: apt only reads
// trusted.gpg.d files ending in .gpg (binary) or .asc (armored).
func keyringName(src Source) string {
	ext := filepath.Ext(src.Keyring)
	if ext != ".asc" {
		ext = ".gpg"
	}
	return "applbuild-" + src.Name + ext
}

// MirrorsEnv names the environment variable that points a build at a
// mirror without editing role files: either a base URI that replaces
// http://deb.debian.org (e.g. http://apt-cache.lan:3142/deb.debian.org), or
// comma-separated FROM=TO URI prefix pairs.
const MirrorsEnv = "APPLBUILD_MIRROR"

// DefaultArchive is the URI prefix a bare APPLBUILD_MIRROR value replaces.
const DefaultArchive = "http://deb.debian.org"

// Mirror replaces the URI prefix From with To in every source.
type Mirror struct {
	From, To string
}

// ParseMirrors reads an APPLBUILD_MIRROR value; "" means no mirrors.
func ParseMirrors(v string) ([]Mirror, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	if !strings.Contains(v, "=") {
		return []Mirror{{From: DefaultArchive, To: strings.TrimRight(v, "/")}}, nil
	}
	var ms []Mirror
	for _, pair := range strings.Split(v, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.Contains(from, "://") || !strings.Contains(to, "://") {
			return nil, fmt.Errorf("%s: %q is not FROM=TO with two URIs, e.g. http://deb.debian.org=http://mirror.lan", MirrorsEnv, pair)
		}
		ms = append(ms, Mirror{From: strings.TrimRight(from, "/"), To: strings.TrimRight(to, "/")})
	}
	return ms, nil
}

// MirrorsFromEnv reads APPLBUILD_MIRROR.
func MirrorsFromEnv() ([]Mirror, error) { return ParseMirrors(os.Getenv(MirrorsEnv)) }

// WithMirrors returns a copy of the Spec whose source URIs starting with a
// mirror's From start with its To instead. The first matching mirror wins.
func (s Spec) WithMirrors(ms []Mirror) Spec {
	out := s
	out.Sources = nil
	for _, src := range s.Sources {
		uris := make([]string, len(src.URIs))
		for i, u := range src.URIs {
			uris[i] = u
			for _, m := range ms {
				if u == m.From || strings.HasPrefix(u, m.From+"/") {
					uris[i] = m.To + strings.TrimPrefix(u, m.From)
					break
				}
			}
		}
		src.URIs = uris
		out.Sources = append(out.Sources, src)
	}
	return out
}
