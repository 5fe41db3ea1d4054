package artifacts

import (
	"fmt"
	"path/filepath"

	"github.com/applbuild/applbuild/roles/node"
)

// LockPath is where a role's lock lives in the source tree, relative to
// the repository root.
func LockPath(role string) string { return filepath.Join("roles", role, "artifacts.lock") }

// ForRole returns the lock embedded in the binary for a role, or an error
// naming the roles that have one.
func ForRole(role string) (*Lock, error) {
	switch role {
	case "node":
		return ParseLock(LockPath(role), node.LockFile())
	}
	return nil, fmt.Errorf("role %q has no artifacts outside the Debian archive; roles with an artifacts lock: node", role)
}

// HasLock reports whether a role needs artifacts.
func HasLock(role string) bool {
	_, err := ForRole(role)
	return err == nil
}

// Prepare makes a build's artifacts ready before any slow step runs: it
// imports bundle (when given) into the cache under cacheDir, then checks
// that every artifact of the role is there and verifies. The error says how
// to get what is missing.
func Prepare(role, cacheDir, bundle string) (*Lock, *Cache, error) {
	l, err := ForRole(role)
	if err != nil {
		return nil, nil, err
	}
	return prepare(l, cacheDir, bundle)
}

// PrepareLock is Prepare with a lock file on disk in place of the role's
// embedded one: a site that pins its own artifacts, or a build from test
// artifacts. The lock must belong to role, so a gateway build cannot pick
// up a node's artifacts by mistake.
func PrepareLock(role, lockPath, cacheDir, bundle string) (*Lock, *Cache, error) {
	l, err := LoadLock(lockPath)
	if err != nil {
		return nil, nil, fmt.Errorf("artifacts lock: %w", err)
	}
	if l.Role != role {
		return nil, nil, fmt.Errorf("artifacts lock %s is for role %s, not %s; give the lock of role %s", lockPath, l.Role, role, role)
	}
	if !HasLock(role) {
		return nil, nil, fmt.Errorf("role %q takes no artifacts from outside the Debian archive, so it takes no artifacts lock; roles with an artifacts lock: node", role)
	}
	return prepare(l, cacheDir, bundle)
}

func prepare(l *Lock, cacheDir, bundle string) (*Lock, *Cache, error) {
	if err := l.RequirePinned(); err != nil {
		return nil, nil, err
	}
	c := &Cache{Dir: cacheDir}
	if bundle != "" {
		if err := ReadBundle(bundle, c, l); err != nil {
			return nil, nil, err
		}
	}
	if err := Require(c, l); err != nil {
		return nil, nil, err
	}
	return l, c, nil
}
