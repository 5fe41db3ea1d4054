package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
)

// Fetcher fills a Cache from the network.
type Fetcher struct {
	Cache *Cache
	// HTTP downloads chart archives; nil means http.DefaultClient.
	HTTP *http.Client
	// Remote holds extra registry options (transport, credentials).
	Remote []remote.Option
	Log    logrus.FieldLogger
}

func (f *Fetcher) log() logrus.FieldLogger {
	if f.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		return l
	}
	return f.Log
}

// Fetch makes sure every artifact of the lock is in the cache and verified.
// It refuses an unpinned lock, keeps going past a failed artifact so one
// run reports every problem, and never leaves a partial entry behind.
func (f *Fetcher) Fetch(ctx context.Context, l *Lock) error {
	if err := l.RequirePinned(); err != nil {
		return err
	}
	if err := os.MkdirAll(f.Cache.Dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, a := range l.Artifacts {
		if f.Cache.Has(a.Digest) && f.Cache.Verify(a) == nil {
			f.log().Debugf("%s: cached", a.ID())
			continue
		}
		var err error
		switch a.Kind {
		case KindImage:
			err = f.fetchImage(ctx, a)
		case KindChart:
			err = f.fetchChart(ctx, a)
		case KindSnap:
			err = f.fetchSnap(ctx, a)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// imageRef returns the pinned reference of an image entry: its source's
// repository at its digest. The tag in the source is never trusted.
func imageRef(a Artifact) (name.Digest, error) {
	tag, err := name.ParseReference(a.Source)
	if err != nil {
		return name.Digest{}, fmt.Errorf("source %q: %w", a.Source, err)
	}
	return tag.Context().Digest(a.Digest), nil
}

func (f *Fetcher) fetchImage(ctx context.Context, a Artifact) error {
	ref, err := imageRef(a)
	if err != nil {
		return err
	}
	f.log().Infof("fetching image %s", ref)
	opts := append([]remote.Option{remote.WithContext(ctx)}, f.Remote...)
	// remote.Get checks that the manifest it receives hashes to the digest
	// it asked for.
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return fmt.Errorf("getting manifest %s: %w", ref, err)
	}
	if desc.Digest.String() != a.Digest {
		return fmt.Errorf("registry served manifest %s for %s; refusing it", desc.Digest, a.Digest)
	}
	if desc.MediaType.IsIndex() {
		return fmt.Errorf("%s is a multi-platform index; pin the digest of its linux/amd64 manifest (`applbuild fetch --update` does)", a.Digest)
	}
	if desc.Size != a.Size {
		return fmt.Errorf("manifest is %d bytes, the lock says %d", desc.Size, a.Size)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return f.storeImage(img, a.Digest, a.Source)
}

// storeImage writes img as an OCI image layout archive into the cache under
// digest. The index annotations name the image so `ctr images import`
// gives it its registry name.
func (f *Fetcher) storeImage(img v1.Image, digest, source string) error {
	tmpDir, err := os.MkdirTemp(f.Cache.Dir, ".layout-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	p, err := layout.Write(tmpDir, empty.Index)
	if err != nil {
		return err
	}
	full := source
	if r, err := name.ParseReference(source); err == nil {
		full = r.Name()
	}
	// Writing pulls every layer; ggcr checks each against its digest.
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          full,
		"org.opencontainers.image.ref.name": full,
	})); err != nil {
		return fmt.Errorf("downloading blobs: %w", err)
	}
	tmp, err := f.Cache.tempFile()
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tarDir(tmp, tmpDir); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := VerifyImageArchive(tmp.Name(), digest); err != nil {
		return fmt.Errorf("the downloaded image does not verify: %w", err)
	}
	return f.Cache.putFile(tmp.Name(), digest)
}

func (f *Fetcher) httpClient() *http.Client {
	if f.HTTP != nil {
		return f.HTTP
	}
	return http.DefaultClient
}

// download streams url into a temporary cache file and returns its path,
// sha256 and size. The caller removes or renames it.
func (f *Fetcher) download(ctx context.Context, url string) (string, string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", 0, err
	}
	resp, err := f.httpClient().Do(req)
	if err != nil {
		return "", "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	tmp, err := f.Cache.tempFile()
	if err != nil {
		return "", "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", "", 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return tmp.Name(), "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

func (f *Fetcher) fetchChart(ctx context.Context, a Artifact) error {
	f.log().Infof("fetching chart %s", a.Source)
	tmp, digest, size, err := f.download(ctx, a.Source)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if digest != a.Digest || size != a.Size {
		return fmt.Errorf("%s is %s (%d bytes); the lock pins %s (%d bytes); refusing it", a.Source, digest, size, a.Digest, a.Size)
	}
	return f.Cache.putFile(tmp, digest)
}
