package artifacts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBundleRoundTripAndTamper(t *testing.T) {
	tr := newTestRegistry(t)
	img := tr.push(t, "test/app", "v1")
	l := testLock(imageEntry(t, tr.host+"/test/app:v1", img))
	src := &Cache{Dir: t.TempDir()}
	if err := (&Fetcher{Cache: src}).Fetch(ctxT(t), l); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "node-artifacts.tar")
	if err := WriteBundle(bundle, src, l); err != nil {
		t.Fatalf("write bundle: %v", err)
	}

	dst := &Cache{Dir: t.TempDir()}
	if err := Require(dst, l); err == nil || !strings.Contains(err.Error(), "applbuild fetch node") || !strings.Contains(err.Error(), "--bundle") {
		t.Fatalf("empty cache: got %v, want a message naming `applbuild fetch node` and --bundle", err)
	}
	if err := ReadBundle(bundle, dst, l); err != nil {
		t.Fatalf("read bundle: %v", err)
	}
	if err := Require(dst, l); err != nil {
		t.Fatalf("after reading the bundle: %v", err)
	}

	// One flipped byte in a layer of the bundle must be caught on import.
	b, _ := os.ReadFile(bundle)
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, b, 0o644)
	corruptLayer(t, bad, img)
	fresh := &Cache{Dir: t.TempDir()}
	if err := ReadBundle(bad, fresh, l); err == nil {
		t.Fatal("a tampered bundle was imported")
	} else {
		t.Logf("tampered bundle rejected: %v", err)
	}
	if got := cacheEntries(t, fresh); len(got) != 0 {
		t.Errorf("cache holds %v after a rejected bundle", got)
	}

	// A bundle made from another lock is refused before anything is read.
	other := testLock(imageEntry(t, tr.host+"/test/app:v1", tr.push(t, "test/app", "v9")))
	if err := ReadBundle(bundle, &Cache{Dir: t.TempDir()}, other); err == nil || !strings.Contains(err.Error(), "different lock") {
		t.Fatalf("bundle for another lock: got %v", err)
	}
}

func TestLockRefusesPlaceholdersAndUnknownKeys(t *testing.T) {
	l, err := ParseLock("x.lock", []byte(`format: 1
role: node
artifacts:
  - kind: image
    name: coredns
    source: registry.example/coredns:1.0
    digest: unpinned
    size: 0
`))
	if err != nil {
		t.Fatal(err)
	}
	err = (&Fetcher{Cache: &Cache{Dir: t.TempDir()}}).Fetch(ctxT(t), l)
	if err == nil || !strings.Contains(err.Error(), "applbuild fetch node --update") || !strings.Contains(err.Error(), "image coredns") {
		t.Fatalf("unpinned lock: got %v", err)
	}
	for _, bad := range []string{
		"format: 1\nrole: node\nartifacts:\n  - kind: image\n    name: a\n    source: r/a:1\n    digest: unpinned\n    sizee: 3\n",
		"format: 1\nrole: node\nartifacts:\n  - kind: image\n    name: a\n    source: r/a:1\n    digest: sha256:1234\n    size: 3\n",
		"format: 1\nrole: node\nartifacts:\n  - kind: tarball\n    name: a\n    source: r/a:1\n    digest: unpinned\n",
		"format: 1\nrole: node\nartifacts:\n  - kind: chart\n    name: a\n    source: http://plain/a.tgz\n    digest: unpinned\n",
	} {
		if _, err := ParseLock("x.lock", []byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		} else {
			t.Logf("rejected: %v", err)
		}
	}
}
