package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// CacheEnv names the environment variable that moves the cache.
const CacheEnv = "APPLBUILD_CACHE"

// DefaultCacheDir is $APPLBUILD_CACHE, else ~/.cache/applbuild.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set %s or HOME: %w", CacheEnv, err)
	}
	return filepath.Join(home, ".cache", "applbuild"), nil
}

// Cache entries, all in <cacheDir>/rootfs and named by Spec.Hash():
//
//	<hash>.tar       the tree (uncompressed tar, as mmdebstrap writes it)
//	<hash>.packages  installed packages, "name<TAB>version<TAB>arch" sorted
//	<hash>.spec.json the spec, for people reading the cache
//	<hash>.tree/     the extracted tree (Tree)
//	<hash>.lock      serializes builders of the same hash across processes
//
// The tarball is renamed into place last, so its presence means the entry
// is complete.
const (
	tarSuffix      = ".tar"
	packagesSuffix = ".packages"
	specSuffix     = ".spec.json"
	treeSuffix     = ".tree"
	lockSuffix     = ".lock"
	tmpInfix       = ".tmp-"
)

// prefsName is the preferences file the pins are written to in the tree.
const prefsName = "applbuild.pref"

// Build returns the tarball of the tree the Spec describes, running
// mmdebstrap only when the cache has no complete entry for Spec.Hash().
// cacheDir "" means DefaultCacheDir. mmdebstrap needs root (or a working
// unshare setup) for the tree's file ownership.
func Build(ctx context.Context, spec Spec, cacheDir string) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", err
	}
	hash, err := spec.Hash()
	if err != nil {
		return "", err
	}
	if cacheDir == "" {
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(cacheDir, "rootfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the rootfs cache: %w", err)
	}
	base := filepath.Join(dir, hash)
	tarball := base + tarSuffix
	if cached(base) {
		logrus.WithField("tarball", tarball).Debug("rootfs cache hit")
		return tarball, nil
	}
	unlock, err := lock(ctx, base+lockSuffix)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have finished the same build while this one waited.
	if cached(base) {
		logrus.WithField("tarball", tarball).Debug("rootfs cache hit after waiting for another build")
		return tarball, nil
	}
	removeStale(base)

	start := time.Now()
	work, err := os.MkdirTemp(dir, hash+tmpInfix)
	if err != nil {
		return "", fmt.Errorf("creating the build directory: %w", err)
	}
	defer removeTree(work)
	if err := spec.writeInputs(work); err != nil {
		return "", err
	}
	tmp := filepath.Join(work, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", fmt.Errorf("creating the build directory: %w", err)
	}
	if err := mmdebstrap(ctx, work, tmp, spec.args()...); err != nil {
		return "", fmt.Errorf("building rootfs %s: %w", hash[:12], err)
	}
	status, err := os.ReadFile(filepath.Join(work, "status"))
	if err != nil {
		return "", fmt.Errorf("mmdebstrap left no dpkg status: %w", err)
	}
	pkgs, err := parseStatus(status)
	if err != nil {
		return "", err
	}
	var list bytes.Buffer
	for _, p := range pkgs {
		fmt.Fprintf(&list, "%s\t%s\t%s\n", p.Name, p.Version, p.Architecture)
	}
	if err := writeFileAtomic(base+packagesSuffix, list.Bytes()); err != nil {
		return "", err
	}
	specJSON, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding the spec: %w", err)
	}
	if err := writeFileAtomic(base+specSuffix, append(specJSON, '\n')); err != nil {
		return "", err
	}
	if err := syncFile(filepath.Join(work, "rootfs.tar")); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(work, "rootfs.tar"), tarball); err != nil {
		return "", fmt.Errorf("moving the tarball into the cache: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	logrus.WithFields(logrus.Fields{"tarball": tarball, "packages": len(pkgs), "took": time.Since(start).Round(time.Second)}).Info("rootfs built")
	return tarball, nil
}

// writeInputs puts the files the setup hooks upload into work.
func (s Spec) writeInputs(work string) error {
	if len(s.Pins) > 0 {
		if err := os.WriteFile(filepath.Join(work, prefsName), []byte(s.Preferences()), 0o644); err != nil {
			return fmt.Errorf("writing apt preferences: %w", err)
		}
	}
	for _, src := range s.Sources {
		if src.Keyring == "" {
			continue
		}
		data, err := os.ReadFile(src.Keyring)
		if err != nil {
			return fmt.Errorf("keyring of source %s: %w", src.Name, err)
		}
		if err := os.WriteFile(filepath.Join(work, keyringName(src)), data, 0o644); err != nil {
			return fmt.Errorf("copying keyring of source %s: %w", src.Name, err)
		}
	}
	return nil
}

// args is the mmdebstrap command line. It runs in the work directory that
// writeInputs filled: uploads are read from there and the output goes there.
func (s Spec) args() []string {
	args := []string{
		"--variant=" + s.Variant,
		"--architectures=" + s.Architecture,
		"--format=tar",
	}
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	for _, o := range s.AptOptions {
		args = append(args, "--aptopt="+o)
	}
	// The preferences must be in the tree before mmdebstrap's first apt
	// run, so the pins decide what is installed, and stay there so later
	// upgrades in the image keep them.
	if len(s.Pins) > 0 {
		args = append(args,
			`--setup-hook=mkdir -p "$1/etc/apt/preferences.d"`,
			"--setup-hook=upload "+prefsName+" /etc/apt/preferences.d/"+prefsName)
	}
	for _, src := range s.Sources {
		if src.Keyring == "" {
			continue
		}
		name := keyringName(src)
		args = append(args,
			`--setup-hook=mkdir -p "$1/etc/apt/trusted.gpg.d"`,
			"--setup-hook=upload "+name+" /etc/apt/trusted.gpg.d/"+name)
	}
	// The dpkg status is read outside the tree so the package list needs
	// nothing from it (no chroot, works in every mmdebstrap mode).
	args = append(args, "--customize-hook=download /var/lib/dpkg/status status")
	args = append(args, s.Suite, "rootfs.tar")
	return append(args, s.SourcesList()...)
}

// cached reports a complete cache entry.
func cached(base string) bool {
	for _, suffix := range []string{tarSuffix, packagesSuffix} {
		if _, err := os.Stat(base + suffix); err != nil {
			return false
		}
	}
	return true
}

// removeStale deletes what killed builds of this hash left behind; the
// caller holds the hash's lock, so no live build owns them.
func removeStale(base string) {
	stale, _ := filepath.Glob(base + "*" + tmpInfix + "*")
	for _, p := range stale {
		logrus.WithField("path", p).Debug("removing a killed build's leftovers")
		if err := removeTree(p); err != nil {
			logrus.WithError(err).Warn("leaving a killed build's leftovers in place")
		}
	}
}

// removeTree deletes a build directory. A killed mmdebstrap leaves proc,
// sysfs, devpts and tmpfs mounted in its temporary tree; they are detached
// first, and if any stays mounted nothing is deleted, so a delete never
// walks into a mounted filesystem.
func removeTree(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		logrus.WithField("mount", m).Debug("detaching a mount left by a killed build")
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("detaching %s before removing %s: %w", m, dir, err)
		}
	}
	if left, err := mountsUnder(dir); err != nil || len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted under it: %v %v", dir, left, err)
	}
	return os.RemoveAll(dir)
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// mountinfo escapes space, tab, newline and backslash as octal.
		mp := unescapeMountinfo(f[4])
		if strings.HasPrefix(mp, abs+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lock takes an exclusive flock on path, waiting until ctx ends. The lock
// goes with the process, so a killed holder never blocks the next build.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another build holding %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Package is one installed package of a tree.
type Package struct {
	Name         string
	Version      string
	Architecture string
}

// PackagesFile is the installed-package list recorded beside a tarball.
func PackagesFile(tarball string) string {
	return strings.TrimSuffix(tarball, tarSuffix) + packagesSuffix
}

// ReadPackages returns the installed packages recorded beside a tarball
// made by Build, sorted by name.
func ReadPackages(tarball string) ([]Package, error) {
	data, err := os.ReadFile(PackagesFile(tarball))
	if err != nil {
		return nil, fmt.Errorf("reading the package list of %s: %w", tarball, err)
	}
	var pkgs []Package
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want name, version and architecture separated by tabs, got %q", PackagesFile(tarball), i+1, line)
		}
		pkgs = append(pkgs, Package{Name: f[0], Version: f[1], Architecture: f[2]})
	}
	return pkgs, nil
}

// parseStatus reads the installed packages from a dpkg status file.
func parseStatus(data []byte) ([]Package, error) {
	var pkgs []Package
	var cur Package
	var installed bool
	flush := func() {
		if cur.Name != "" && installed {
			pkgs = append(pkgs, cur)
		}
		cur, installed = Package{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Architecture = v
		case "Status":
			installed = strings.HasSuffix(v, " installed")
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	if len(pkgs) == 0 {
		return nil, errors.New("dpkg status lists no installed package; the tree is empty")
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, nil
}

// writeFileAtomic writes data to a temporary sibling, syncs it and renames
// it over path, so readers see the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+tmpInfix)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
