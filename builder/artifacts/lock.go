// Package artifacts resolves the artifacts a role needs from outside the
// Debian archive (snaps, container images, chart archives) into a
// content-addressed cache, verifies them by digest whenever they are read,
// and moves them between machines as an offline bundle.
//
// The lock file lists every artifact with its pinned digest. Nothing is
// fetched unpinned: a lock whose entries have no digest is refused until
// `applbuild fetch ROLE --update` pins it on a connected machine.
package artifacts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// LockFormat is the version of the lock file layout.
const LockFormat = 1

// Kinds of artifact.
const (
	KindSnap  = "snap"
	KindImage = "image"
	KindChart = "chart"
)

// Unpinned is the digest value of an entry that has not been resolved yet.
// It is the only non-digest value a lock may hold, so a missing pin is
// visible and never mistaken for a real one.
const Unpinned = "unpinned"

// Lock is a validated lock file.
type Lock struct {
	// File is where the lock was read from, for error messages.
	File string
	// Role is the role the artifacts belong to, e.g. "node".
	Role      string
	Artifacts []Artifact
}

// Artifact is one pinned artifact.
type Artifact struct {
	Kind string `yaml:"kind" json:"kind"`
	// Name is the snap name, the image's short name, or the chart name.
	Name string `yaml:"name" json:"name"`
	// Version is informational for images and charts (the tag, the chart
	// version); for snaps it is the upstream version the revision carries.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// Channel and Revision pin a snap: the revision is what is fetched,
	// the channel is what --update resolves the revision from.
	Channel  string `yaml:"channel,omitempty" json:"channel,omitempty"`
	Revision int    `yaml:"revision,omitempty" json:"revision,omitempty"`
	// Source is the image reference (registry/repository:tag), the chart's
	// HTTPS URL, or the snap store ("snapstore").
	Source string `yaml:"source" json:"source"`
	// Digest is "sha256:<hex>": of the snap file, of the chart archive, or
	// of the image's linux/amd64 manifest. Unpinned until --update.
	Digest string `yaml:"digest" json:"digest"`
	// Size in bytes of the snap file, the chart archive or the image
	// manifest; 0 while unpinned.
	Size int64 `yaml:"size" json:"size"`
	// Assertions is the digest of the snap's assertion file (snaps only).
	Assertions string `yaml:"assertions,omitempty" json:"assertions,omitempty"`
}

// ID names the artifact in messages.
func (a Artifact) ID() string { return a.Kind + " " + a.Name }

// Pinned reports whether the entry has a digest.
func (a Artifact) Pinned() bool { return a.Digest != Unpinned }

type rawLock struct {
	Format    int        `yaml:"format"`
	Role      string     `yaml:"role"`
	Artifacts []Artifact `yaml:"artifacts"`
}

var (
	digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	nameRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// ParseLock reads and validates a lock file's content. file names it in
// errors. Entries may be unpinned here; RequirePinned refuses them.
func ParseLock(file string, data []byte) (*Lock, error) {
	var raw rawLock
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %s (valid keys: format, role, artifacts; per artifact: kind, name, version, channel, revision, source, digest, size, assertions)", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if raw.Format != LockFormat {
		return nil, fmt.Errorf("%s: format %d is not supported; want format: %d", file, raw.Format, LockFormat)
	}
	if !nameRe.MatchString(raw.Role) {
		return nil, fmt.Errorf("%s: role %q is not a role name", file, raw.Role)
	}
	if len(raw.Artifacts) == 0 {
		return nil, fmt.Errorf("%s: no artifacts; a lock lists at least one", file)
	}
	var errs []error
	seen := map[string]bool{}
	for i, a := range raw.Artifacts {
		where := fmt.Sprintf("%s: artifacts[%d] (%s)", file, i, a.Name)
		if seen[a.Kind+"/"+a.Name] {
			errs = append(errs, fmt.Errorf("%s: %s is listed twice", where, a.ID()))
		}
		seen[a.Kind+"/"+a.Name] = true
		if !nameRe.MatchString(a.Name) {
			errs = append(errs, fmt.Errorf("%s: name %q must be lower case letters, digits, '.', '_' and '-'", where, a.Name))
		}
		if a.Digest != Unpinned && !digestRe.MatchString(a.Digest) {
			errs = append(errs, fmt.Errorf("%s: digest %q is neither sha256:<64 hex digits> nor %q", where, a.Digest, Unpinned))
		}
		if a.Pinned() && a.Size <= 0 {
			errs = append(errs, fmt.Errorf("%s: a pinned entry needs its size in bytes", where))
		}
		switch a.Kind {
		case KindSnap:
			if a.Channel == "" {
				errs = append(errs, fmt.Errorf("%s: a snap needs a channel, e.g. 1.35/stable", where))
			}
			if a.Pinned() && (a.Revision <= 0 || !digestRe.MatchString(a.Assertions)) {
				errs = append(errs, fmt.Errorf("%s: a pinned snap needs its revision and the sha256 of its assertions", where))
			}
		case KindImage:
			if a.Source == "" || strings.Contains(a.Source, "@") {
				errs = append(errs, fmt.Errorf("%s: source %q must be registry/repository:tag (the digest goes in digest)", where, a.Source))
			}
		case KindChart:
			if !strings.HasPrefix(a.Source, "https://") {
				errs = append(errs, fmt.Errorf("%s: source %q must be an https:// URL of the chart archive", where, a.Source))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: kind %q is not one of snap, image, chart", where, a.Kind))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Lock{File: file, Role: raw.Role, Artifacts: raw.Artifacts}, nil
}

// LoadLock reads a lock file from disk.
func LoadLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseLock(path, b)
}

// RequirePinned refuses a lock with unpinned entries, naming them and the
// command that pins them. Digests are never guessed.
func (l *Lock) RequirePinned() error {
	var names []string
	for _, a := range l.Artifacts {
		if !a.Pinned() {
			names = append(names, a.ID())
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return fmt.Errorf("%s: %d artifact(s) have no pinned digest (%s); run `applbuild fetch %s --update` on a machine that reaches the snap store and the registries, and commit the updated lock",
		l.File, len(names), strings.Join(names, ", "), l.Role)
}

// Marshal renders the lock in its file format.
func (l *Lock) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# Artifacts from outside the Debian archive, pinned by digest.\n# Written by `applbuild fetch " + l.Role + " --update`; see docs/node.md.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(rawLock{Format: LockFormat, Role: l.Role, Artifacts: l.Artifacts}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
