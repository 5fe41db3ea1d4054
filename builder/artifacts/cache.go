package artifacts

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Cache is a content-addressed store: every entry lives at
// <Dir>/artifacts/sha256/<hex>. For snaps, assertions and charts the hex is
// the sha256 of the file itself. For an image it is the digest of the
// image's manifest, and the file is an OCI image layout archive holding
// that manifest; reading it checks the manifest and every blob.
type Cache struct {
	Dir string
}

// Path returns where the entry for digest lives.
func (c *Cache) Path(digest string) string {
	return filepath.Join(c.Dir, "artifacts", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// Has reports whether an entry exists, without verifying it.
func (c *Cache) Has(digest string) bool {
	_, err := os.Stat(c.Path(digest))
	return err == nil
}

// Verify checks the cached entry of a against its pinned digest and size.
// It is called on every read: a cache on disk can rot or be edited.
func (c *Cache) Verify(a Artifact) error {
	if !a.Pinned() {
		return fmt.Errorf("%s is unpinned", a.ID())
	}
	p := c.Path(a.Digest)
	if a.Kind == KindImage {
		if err := VerifyImageArchive(p, a.Digest); err != nil {
			return fmt.Errorf("%s: cached archive %s: %w", a.ID(), p, err)
		}
		return nil
	}
	if err := verifyFile(p, a.Digest, a.Size); err != nil {
		return fmt.Errorf("%s: cached file %s: %w", a.ID(), p, err)
	}
	if a.Kind == KindSnap {
		if err := verifyFile(c.Path(a.Assertions), a.Assertions, -1); err != nil {
			return fmt.Errorf("%s assertions: cached file %s: %w", a.ID(), c.Path(a.Assertions), err)
		}
	}
	return nil
}

// verifyFile checks a file's sha256 and, when size >= 0, its size.
func verifyFile(p, digest string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("size %d bytes, the lock says %d", n, size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("digest %s, the lock says %s", got, digest)
	}
	return nil
}

// putFile moves a finished temporary file into the cache under digest,
// fsyncing it first, so a crash leaves the old entry or none.
func (c *Cache) putFile(tmp, digest string) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, c.Path(digest)); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(c.Path(digest))); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// tempFile creates a temporary sibling of the cache entries, so the final
// rename stays on one file system.
func (c *Cache) tempFile() (*os.File, error) {
	dir := filepath.Dir(c.Path("sha256:x"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, ".incoming-*")
}

// ociIndex and ociManifest are the parts of the OCI image layout that the
// verification reads.
type ociDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type ociIndex struct {
	Manifests []ociDescriptor `json:"manifests"`
}

type ociManifest struct {
	MediaType string          `json:"mediaType"`
	Config    ociDescriptor   `json:"config"`
	Layers    []ociDescriptor `json:"layers"`
}

// VerifyImageArchive checks an OCI image layout archive: its index names
// exactly the manifest digest, every blob hashes to its name, and the
// manifest's config and layers are all present with their sizes.
func VerifyImageArchive(p, digest string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	blobs := map[string]int64{}
	var index, manifest []byte
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(hdr.Name)
		switch {
		case name == "index.json":
			if index, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return err
			}
		case strings.HasPrefix(name, "blobs/sha256/"):
			want := "sha256:" + strings.TrimPrefix(name, "blobs/sha256/")
			h := sha256.New()
			var w io.Writer = h
			kept := &sliceWriter{}
			if want == digest {
				// The manifest is small; keep it to follow its references.
				w = io.MultiWriter(h, kept)
			}
			n, err := io.Copy(w, tr)
			if err != nil {
				return fmt.Errorf("blob %s: %w", want, err)
			}
			blobs[want] = n
			if want == digest {
				manifest = kept.b
			}
			if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want {
				return fmt.Errorf("blob %s is corrupt: its content hashes to %s", want, got)
			}
		}
	}
	if index == nil {
		return errors.New("no index.json: not an OCI image layout archive")
	}
	var idx ociIndex
	if err := json.Unmarshal(index, &idx); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest {
		var got []string
		for _, m := range idx.Manifests {
			got = append(got, m.Digest)
		}
		return fmt.Errorf("index.json names %v; want exactly the pinned manifest %s", got, digest)
	}
	if manifest == nil {
		return fmt.Errorf("manifest blob %s is missing", digest)
	}
	if blobs[digest] != idx.Manifests[0].Size {
		return fmt.Errorf("manifest %s is %d bytes, index.json says %d", digest, blobs[digest], idx.Manifests[0].Size)
	}
	var m ociManifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", digest, err)
	}
	for _, d := range append([]ociDescriptor{m.Config}, m.Layers...) {
		n, ok := blobs[d.Digest]
		if !ok {
			return fmt.Errorf("blob %s named by the manifest is missing", d.Digest)
		}
		if n != d.Size {
			return fmt.Errorf("blob %s is %d bytes, the manifest says %d", d.Digest, n, d.Size)
		}
	}
	return nil
}

type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// tarDir writes the regular files under dir into w as a tar with fixed
// owners, modes and times, so the same layout always gives the same bytes.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
