package artifacts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Update resolves every entry of the lock to what its source serves today
// (an image tag's linux/amd64 manifest, a snap channel's current revision,
// the chart archive's bytes), fetches it into the cache, and returns the
// newly pinned lock. It is the only place a digest is learned rather than
// checked; the caller writes the result for review.
func (f *Fetcher) Update(ctx context.Context, l *Lock) (*Lock, error) {
	out := &Lock{File: l.File, Role: l.Role}
	var errs []error
	for _, a := range l.Artifacts {
		var err error
		switch a.Kind {
		case KindImage:
			a, err = f.resolveImage(ctx, a)
		case KindChart:
			a, err = f.resolveChart(ctx, a)
		case KindSnap:
			a, err = f.resolveSnap(ctx, a)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.ID(), err))
		}
		out.Artifacts = append(out.Artifacts, a)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, f.Fetch(ctx, out)
}

func (f *Fetcher) resolveImage(ctx context.Context, a Artifact) (Artifact, error) {
	ref, err := name.ParseReference(a.Source)
	if err != nil {
		return a, fmt.Errorf("source %q: %w", a.Source, err)
	}
	desc, err := remote.Get(ref, append([]remote.Option{remote.WithContext(ctx)}, f.Remote...)...)
	if err != nil {
		return a, err
	}
	a.Digest, a.Size = desc.Digest.String(), desc.Size
	if !desc.MediaType.IsIndex() {
		return a, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return a, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return a, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == "amd64" {
			a.Digest, a.Size = d.Digest.String(), d.Size
			return a, nil
		}
	}
	return a, fmt.Errorf("%s has no linux/amd64 image", a.Source)
}

func (f *Fetcher) resolveChart(ctx context.Context, a Artifact) (Artifact, error) {
	tmp, digest, size, err := f.download(ctx, a.Source)
	if err != nil {
		return a, err
	}
	os.Remove(tmp)
	a.Digest, a.Size = digest, size
	return a, nil
}

func (f *Fetcher) resolveSnap(ctx context.Context, a Artifact) (Artifact, error) {
	dir, err := os.MkdirTemp(f.Cache.Dir, ".snap-*")
	if err != nil {
		return a, err
	}
	defer os.RemoveAll(dir)
	if err := snapProgram(ctx, f.log(), dir, "download", "--channel="+a.Channel, "--target-directory="+dir, a.Name); err != nil {
		return a, err
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, a.Name+"_*.snap"))
	if len(snaps) != 1 {
		return a, errSnapName
	}
	rev, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(snaps[0]), a.Name+"_"), ".snap"))
	if err != nil {
		return a, errSnapName
	}
	a.Revision = rev
	if a.Digest, a.Size, err = hashFile(snaps[0]); err != nil {
		return a, err
	}
	if a.Assertions, _, err = hashFile(strings.TrimSuffix(snaps[0], ".snap") + ".assert"); err != nil {
		return a, err
	}
	return a, nil
}
