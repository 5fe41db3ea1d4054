package artifacts

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/applbuild/applbuild/roles/node"
)

// TreeDir is where an image carries its role's artifacts, read by the
// agent at first boot. Nothing here is installed state: the snaps are
// installed, and the images imported, on the booted VM.
const TreeDir = node.ArtifactsDir

// Names of the files under TreeDir.
const (
	TreeLock   = "artifacts.lock"
	TreeImages = node.ImagesFile // image name -> repository@digest
)

// TreePath returns where an artifact lives under TreeDir: snaps/NAME.snap
// (and .assert), images/NAME.tar (OCI archive), charts/NAME.tgz.
func TreePath(a Artifact) string {
	switch a.Kind {
	case KindSnap:
		return filepath.Join(TreeDir, "snaps", a.Name+".snap")
	case KindImage:
		return filepath.Join(TreeDir, "images", a.Name+".tar")
	default:
		return filepath.Join(TreeDir, "charts", a.Name+".tgz")
	}
}

// ImageRef returns the pinned reference an image artifact runs as:
// its source repository at its digest.
func ImageRef(a Artifact) (string, error) {
	r, err := name.ParseReference(a.Source)
	if err != nil {
		return "", fmt.Errorf("%s: source %q: %w", a.ID(), a.Source, err)
	}
	return r.Context().Name() + "@" + a.Digest, nil
}

// Install copies every artifact of the lock from the cache into the root
// file system at tree, verifying each on the way, with the lock and an
// image reference map beside them. Each file is written to a temporary
// sibling and renamed.
func Install(c *Cache, l *Lock, tree string) error {
	if err := Require(c, l); err != nil {
		return err
	}
	refs := map[string]string{}
	for _, a := range l.Artifacts {
		if err := copyInto(c.Path(a.Digest), filepath.Join(tree, TreePath(a))); err != nil {
			return fmt.Errorf("%s: %w", a.ID(), err)
		}
		switch a.Kind {
		case KindSnap:
			p := filepath.Join(tree, TreePath(a))
			if err := copyInto(c.Path(a.Assertions), p[:len(p)-len(".snap")]+".assert"); err != nil {
				return fmt.Errorf("%s assertions: %w", a.ID(), err)
			}
		case KindImage:
			ref, err := ImageRef(a)
			if err != nil {
				return err
			}
			refs[a.Name] = ref
		}
	}
	// Verified copies, not just verified sources: the tree is what ships.
	for _, a := range l.Artifacts {
		p := filepath.Join(tree, TreePath(a))
		var err error
		if a.Kind == KindImage {
			err = VerifyImageArchive(p, a.Digest)
		} else {
			err = verifyFile(p, a.Digest, a.Size)
		}
		if err != nil {
			return fmt.Errorf("%s in the tree: %w", a.ID(), err)
		}
	}
	lockData, err := l.Marshal()
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(tree, TreeDir, TreeLock), lockData); err != nil {
		return err
	}
	// encoding/json writes map keys sorted, so the file is stable.
	refData, err := json.MarshalIndent(refs, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(tree, TreeDir, TreeImages), append(refData, '\n'))
}

// LoadImageRefs reads the image reference map an image carries.
func LoadImageRefs(root string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, TreeDir, TreeImages))
	if err != nil {
		return nil, err
	}
	var refs map[string]string
	if err := json.Unmarshal(b, &refs); err != nil {
		return nil, fmt.Errorf("%s: %w", TreeImages, err)
	}
	return refs, nil
}

func copyInto(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func writeAtomic(dst string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	tmp.Chmod(0o644)
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
