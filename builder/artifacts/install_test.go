package artifacts

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallCarriesVerifiedArtifactsIntoTree(t *testing.T) {
	tr := newTestRegistry(t)
	img := tr.push(t, "test/app", "v1")
	a := imageEntry(t, tr.host+"/test/app:v1", img)
	l := testLock(a)
	c := &Cache{Dir: t.TempDir()}
	tree := t.TempDir()
	if err := Install(c, l, tree); err == nil || !strings.Contains(err.Error(), "applbuild fetch node") {
		t.Fatalf("install from an empty cache: got %v", err)
	}
	if err := (&Fetcher{Cache: c}).Fetch(ctxT(t), l); err != nil {
		t.Fatal(err)
	}
	if err := Install(c, l, tree); err != nil {
		t.Fatal(err)
	}
	if err := VerifyImageArchive(filepath.Join(tree, TreePath(a)), a.Digest); err != nil {
		t.Errorf("installed archive: %v", err)
	}
	refs, err := LoadImageRefs(tree)
	if err != nil {
		t.Fatal(err)
	}
	if want := tr.host + "/test/app@" + a.Digest; refs["app"] != want {
		t.Errorf("images.json maps app to %q, want %q", refs["app"], want)
	}
	got, err := LoadLock(filepath.Join(tree, TreeDir, TreeLock))
	if err != nil || got.Artifacts[0].Digest != a.Digest {
		t.Errorf("carried lock: %v %+v", err, got)
	}
	// A cache entry that rotted after the fetch must not reach a tree.
	corruptLayer(t, c.Path(a.Digest), img)
	if err := Install(c, l, t.TempDir()); err == nil {
		t.Error("a corrupt cache entry was installed into a tree")
	}
}
