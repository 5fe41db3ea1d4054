package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Artifact is what a Packer build of an appliance image leaves behind: one
// disk image per format and the manifest describing them.
type Artifact struct {
	// Outputs are the disk images, in the order of the formats setting.
	Outputs []Output
	// Manifest is the path of <role>-<version>.manifest.json.
	Manifest string
}

// BuilderId reports BuilderID.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files lists the disk images and then the manifest.
func (a *Artifact) Files() []string {
	files := make([]string, 0, len(a.Outputs)+1)
	for _, o := range a.Outputs {
		files = append(files, o.Path)
	}
	return append(files, a.Manifest)
}

// Id is <role>-<version>, the name every output shares.
func (a *Artifact) Id() string {
	return strings.TrimSuffix(filepath.Base(a.Manifest), ".manifest.json")
}

// String lists the outputs for Packer's summary at the end of a build.
func (a *Artifact) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "appliance image %s:", a.Id())
	for _, o := range a.Outputs {
		fmt.Fprintf(&b, "\n  %s %s (%.1f MB, sha256:%s)", o.Format, o.Path, float64(o.Size)/1e6, o.SHA256)
	}
	fmt.Fprintf(&b, "\n  manifest %s", a.Manifest)
	return b.String()
}

// State answers "manifest" with the manifest's path, for post-processors
// that want the package list or checksums; anything else is nil.
func (a *Artifact) State(name string) interface{} {
	if name == "manifest" {
		return a.Manifest
	}
	return nil
}

// Destroy removes the disk images and the manifest. Files already gone
// are not an error, so a second Destroy succeeds.
func (a *Artifact) Destroy() error {
	var errs []error
	for _, f := range a.Files() {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}
