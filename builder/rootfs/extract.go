package rootfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
)

// Extract unpacks a tarball made by Build into dir, which must not exist
// yet: it is filled under a temporary sibling and renamed into place, so dir
// either holds the whole tree or does not exist. Device nodes and owners
// need root.
func Extract(ctx context.Context, tarball, dir string) error {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("extracting %s: %s already exists; give a new directory", tarball, dir)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+tmpInfix)
	if err != nil {
		return fmt.Errorf("extracting %s: %w", tarball, err)
	}
	if err := tarExtract(ctx, tarball, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("extracting %s: %w", tarball, err)
	}
	// MkdirTemp made it 0700; the tree's root is a normal root directory.
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("extracting %s: %w", tarball, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("extracting %s: %w", tarball, err)
	}
	return syncDir(filepath.Dir(dir))
}

// Tree returns the extracted tree of a tarball made by Build, extracting it
// beside the tarball (<hash>.tree) the first time. Concurrent callers, in
// this process or others, wait for one extraction. Programs run from the
// tree (chroot) may write into it; it is shared by every caller.
func Tree(ctx context.Context, tarball string) (string, error) {
	if !strings.HasSuffix(tarball, tarSuffix) {
		return "", fmt.Errorf("%s is not a rootfs tarball from Build (no %s suffix)", tarball, tarSuffix)
	}
	base := strings.TrimSuffix(tarball, tarSuffix)
	tree := base + treeSuffix
	if _, err := os.Stat(tree); err == nil {
		return tree, nil
	}
	unlock, err := lock(ctx, base+lockSuffix)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(tree); err == nil {
		return tree, nil
	}
	removeStale(tree)
	if err := Extract(ctx, tarball, tree); err != nil {
		return "", err
	}
	logrus.WithField("tree", tree).Debug("rootfs extracted")
	return tree, nil
}
