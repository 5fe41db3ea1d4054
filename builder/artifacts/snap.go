package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
)

// errNoStore explains what a snap fetch needs, since a build host that
// reaches only the Debian archive cannot do it.
var errNoStore = "snaps come from the snap store; on a machine without it, run `applbuild fetch node --bundle node-artifacts.tar` on a connected machine and build with `applbuild image node --bundle node-artifacts.tar`"

// snapProgram runs `snap ARGS...` in dir: the one wrapper for the snap
// command. It logs the command line and returns the tail of stderr.
func snapProgram(ctx context.Context, log logrus.FieldLogger, dir string, args ...string) error {
	path, err := exec.LookPath("snap")
	if err != nil {
		return fmt.Errorf("the snap command is not installed (Debian package snapd); %s", errNoStore)
	}
	log.Debugf("run: snap %s (in %s)", strings.Join(args, " "), dir)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		tail := strings.TrimSpace(stderr.String())
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("snap %s: %v: %s; %s", strings.Join(args, " "), err, tail, errNoStore)
	}
	return nil
}

// fetchSnap downloads the pinned revision with its assertions and checks
// the snap file's digest.
func (f *Fetcher) fetchSnap(ctx context.Context, a Artifact) error {
	dir, err := os.MkdirTemp(f.Cache.Dir, ".snap-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := snapProgram(ctx, f.log(), dir, "download", fmt.Sprintf("--revision=%d", a.Revision), "--target-directory="+dir, a.Name); err != nil {
		return err
	}
	snapFile := filepath.Join(dir, fmt.Sprintf("%s_%d.snap", a.Name, a.Revision))
	assertFile := filepath.Join(dir, fmt.Sprintf("%s_%d.assert", a.Name, a.Revision))
	if err := verifyFile(snapFile, a.Digest, a.Size); err != nil {
		return fmt.Errorf("downloaded %s: %w", filepath.Base(snapFile), err)
	}
	if err := verifyFile(assertFile, a.Assertions, -1); err != nil {
		return fmt.Errorf("downloaded %s: %w", filepath.Base(assertFile), err)
	}
	for _, m := range []struct{ file, digest string }{{snapFile, a.Digest}, {assertFile, a.Assertions}} {
		if err := f.Cache.putFile(m.file, m.digest); err != nil {
			return err
		}
	}
	return nil
}

// hashFile returns a file's sha256 digest and size.
func hashFile(p string) (string, int64, error) {
	fh, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

var errSnapName = errors.New("snap download wrote no single NAME_REVISION.snap file")
