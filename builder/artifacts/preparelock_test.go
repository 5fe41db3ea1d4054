package artifacts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A lock on disk replaces the role's own only for a role that takes
// artifacts, only when it belongs to that role, and it is held to the same
// rules: pinned, and every entry in the cache and verified.
func TestPrepareLockChecksRoleAndPins(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	snapD, snapN := putStandIn(t, c, []byte("stand-in for snapd_9999.snap\n"))
	assertD, _ := putStandIn(t, c, []byte("stand-in for snapd_9999.assert\n"))
	l := testLock(Artifact{Kind: KindSnap, Name: "snapd", Channel: "latest/stable", Revision: 9999, Source: "snapstore", Digest: snapD, Size: snapN, Assertions: assertD})
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "site.lock")
	os.WriteFile(lockPath, data, 0o644)

	got, gc, err := PrepareLock("node", lockPath, c.Dir, "")
	if err != nil {
		t.Fatalf("a pinned lock with its artifacts cached: %v", err)
	}
	if gc.Dir != c.Dir || len(got.Artifacts) != 1 || got.Artifacts[0].Digest != snapD {
		t.Errorf("got lock %+v, cache %+v", got, gc)
	}

	if _, _, err := PrepareLock("gateway", lockPath, c.Dir, ""); err == nil || !strings.Contains(err.Error(), "not gateway") {
		t.Errorf("a node lock for a gateway build: %v", err)
	}
	gw := strings.Replace(string(data), "role: node", "role: gateway", 1)
	gwPath := filepath.Join(dir, "gateway.lock")
	os.WriteFile(gwPath, []byte(gw), 0o644)
	if _, _, err := PrepareLock("gateway", gwPath, c.Dir, ""); err == nil || !strings.Contains(err.Error(), "takes no artifacts") {
		t.Errorf("an artifacts lock for the gateway: %v", err)
	}

	if _, _, err := PrepareLock("node", lockPath, t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "applbuild fetch node") {
		t.Errorf("an empty cache: %v", err)
	}
	unpinned := strings.Replace(string(data), snapD, Unpinned, 1)
	upPath := filepath.Join(dir, "unpinned.lock")
	os.WriteFile(upPath, []byte(unpinned), 0o644)
	if _, _, err := PrepareLock("node", upPath, c.Dir, ""); err == nil || !strings.Contains(err.Error(), "--update") {
		t.Errorf("an unpinned lock: %v", err)
	}
	if _, _, err := PrepareLock("node", filepath.Join(dir, "missing.lock"), c.Dir, ""); err == nil {
		t.Error("a missing lock file was accepted")
	}
}
