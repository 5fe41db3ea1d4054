package artifacts

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// BundleLockName is the lock's name inside a bundle; it comes first.
const BundleLockName = "artifacts.lock"

// entries lists the cache digests of an artifact: the entry itself and,
// for a snap, its assertions.
func entries(a Artifact) []string {
	if a.Kind == KindSnap {
		return []string{a.Digest, a.Assertions}
	}
	return []string{a.Digest}
}

// Require checks that every artifact of the lock is in the cache and
// verifies; it is what a build calls before doing anything else, so a
// missing artifact fails at once with the command that provides it.
func Require(c *Cache, l *Lock) error {
	if err := l.RequirePinned(); err != nil {
		return err
	}
	var missing []string
	var errs []error
	for _, a := range l.Artifacts {
		have := true
		for _, d := range entries(a) {
			have = have && c.Has(d)
		}
		if !have {
			missing = append(missing, a.ID())
			continue
		}
		if err := c.Verify(a); err != nil {
			errs = append(errs, err)
		}
	}
	if len(missing) > 0 {
		errs = append([]error{fmt.Errorf("%d artifact(s) of role %s are not in the cache %s: %s; run `applbuild fetch %s` on a machine that reaches the snap store and registries, or bring a bundle made there with `applbuild fetch %s --bundle %s-artifacts.tar` and pass it with --bundle",
			len(missing), l.Role, c.Dir, strings.Join(missing, ", "), l.Role, l.Role, l.Role)}, errs...)
	}
	return errors.Join(errs...)
}

// WriteBundle writes an offline bundle to dst atomically: the lock first,
// then every cache entry the lock names, each verified as it is added.
func WriteBundle(dst string, c *Cache, l *Lock) error {
	if err := Require(c, l); err != nil {
		return err
	}
	lockData, err := l.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := add(BundleLockName, int64(len(lockData)), strings.NewReader(string(lockData))); err != nil {
		tmp.Close()
		return err
	}
	var digests []string
	for _, a := range l.Artifacts {
		digests = append(digests, entries(a)...)
	}
	sort.Strings(digests)
	for i, d := range digests {
		if i > 0 && digests[i-1] == d {
			continue
		}
		f, err := os.Open(c.Path(d))
		if err != nil {
			tmp.Close()
			return err
		}
		fi, _ := f.Stat()
		err = add("artifacts/sha256/"+strings.TrimPrefix(d, "sha256:"), fi.Size(), f)
		f.Close()
		if err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
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

// ReadBundle imports a bundle into the cache. The bundle's lock must pin
// exactly what want pins; every entry is verified against its digest
// before it enters the cache, and entries the lock does not name are
// refused.
func ReadBundle(src string, c *Cache, want *Lock) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := want.RequirePinned(); err != nil {
		return err
	}
	tr := tar.NewReader(f)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != BundleLockName {
		return fmt.Errorf("%s: not an artifacts bundle: its first entry must be %s", src, BundleLockName)
	}
	data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	got, err := ParseLock(src+":"+BundleLockName, data)
	if err != nil {
		return err
	}
	if err := sameLock(got, want); err != nil {
		return fmt.Errorf("%s was made from a different lock than %s: %w; make a new bundle with `applbuild fetch %s --bundle`", src, want.File, err, want.Role)
	}
	byDigest := map[string]Artifact{}
	for _, a := range want.Artifacts {
		for _, d := range entries(a) {
			byDigest[d] = a
		}
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		name := path.Clean(hdr.Name)
		d := "sha256:" + strings.TrimPrefix(name, "artifacts/sha256/")
		a, ok := byDigest[d]
		if hdr.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "artifacts/sha256/") || !ok {
			return fmt.Errorf("%s: entry %s is not an artifact the lock names", src, hdr.Name)
		}
		if err := importEntry(c, tr, a, d); err != nil {
			return fmt.Errorf("%s: entry %s (%s): %w", src, hdr.Name, a.ID(), err)
		}
	}
	return Require(c, want)
}

// importEntry copies one bundle entry into a temporary cache file,
// verifies it, and renames it into place.
func importEntry(c *Cache, r io.Reader, a Artifact, d string) error {
	tmp, err := c.tempFile()
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	switch {
	case a.Kind == KindImage:
		err = VerifyImageArchive(tmp.Name(), d)
	case d == a.Digest:
		err = verifyFile(tmp.Name(), d, a.Size)
	default:
		err = verifyFile(tmp.Name(), d, -1)
	}
	if err != nil {
		return err
	}
	return c.putFile(tmp.Name(), d)
}

// sameLock reports the first artifact whose pin differs.
func sameLock(got, want *Lock) error {
	index := map[string]Artifact{}
	for _, a := range got.Artifacts {
		index[a.Kind+"/"+a.Name] = a
	}
	if len(got.Artifacts) != len(want.Artifacts) {
		return fmt.Errorf("it has %d artifacts, the lock %d", len(got.Artifacts), len(want.Artifacts))
	}
	for _, w := range want.Artifacts {
		g, ok := index[w.Kind+"/"+w.Name]
		if !ok {
			return fmt.Errorf("%s is missing", w.ID())
		}
		if g.Digest != w.Digest || g.Assertions != w.Assertions || g.Size != w.Size {
			return fmt.Errorf("%s is pinned to %s, the lock says %s", w.ID(), g.Digest, w.Digest)
		}
	}
	return nil
}
