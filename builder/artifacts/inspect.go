package artifacts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// stateDirs are where an installed MicroK8s (or a snapd that has installed
// or seeded anything) keeps state. A node image must have none: MicroK8s
// is installed at first boot so each VM makes its own CA, certificates and
// node name.
var stateDirs = []string{
	"/var/snap/microk8s",
	"/snap/microk8s",
	"/var/lib/snapd/snaps/microk8s",
	"/var/lib/snapd/state.json",
	"/var/lib/snapd/seed/seed.yaml",
}

// InspectTree checks a baked root file system against the lock: every
// snap with its assertions and every image archive is present and verifies
// by digest, the carried lock pins the same artifacts, and no MicroK8s
// state exists. It returns every problem found.
func InspectTree(tree string, l *Lock) error {
	var errs []error
	for _, a := range l.Artifacts {
		p := filepath.Join(tree, TreePath(a))
		var err error
		if a.Kind == KindImage {
			err = VerifyImageArchive(p, a.Digest)
		} else {
			err = verifyFile(p, a.Digest, a.Size)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", a.ID(), TreePath(a), err))
		}
		if a.Kind == KindSnap {
			ap := strings.TrimSuffix(p, ".snap") + ".assert"
			if err := verifyFile(ap, a.Assertions, -1); err != nil {
				errs = append(errs, fmt.Errorf("%s assertions: %w", a.ID(), err))
			}
		}
	}
	carried, err := LoadLock(filepath.Join(tree, TreeDir, TreeLock))
	if err != nil {
		errs = append(errs, fmt.Errorf("carried lock: %w", err))
	} else if err := sameLock(carried, l); err != nil {
		errs = append(errs, fmt.Errorf("carried lock differs from %s: %w", l.File, err))
	}
	for _, d := range stateDirs {
		if _, err := os.Lstat(filepath.Join(tree, d)); err == nil {
			errs = append(errs, fmt.Errorf("%s exists: the image holds MicroK8s or snapd state; it must be installed at first boot, not baked", d))
		}
	}
	return errors.Join(errs...)
}
