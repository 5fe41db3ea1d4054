package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// putStandIn stores bytes in the cache as a stand-in for a snap, assertion
// or chart file: real snaps come only from the snap store, and the chart
// repository's archive only from its site, neither of which this host
// reaches. What is tested is carrying and verifying files.
func putStandIn(t *testing.T, c *Cache, data []byte) (string, int64) {
	t.Helper()
	sum := sha256.Sum256(data)
	d := "sha256:" + hex.EncodeToString(sum[:])
	os.MkdirAll(filepath.Dir(c.Path(d)), 0o755)
	if err := os.WriteFile(c.Path(d), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return d, int64(len(data))
}

func TestInspectTreeWithStandInSnapFiles(t *testing.T) {
	tr := newTestRegistry(t)
	img := tr.push(t, "test/app", "v1")
	c := &Cache{Dir: t.TempDir()}
	snapD, snapN := putStandIn(t, c, []byte("stand-in for microk8s_9999.snap\n"))
	assertD, _ := putStandIn(t, c, []byte("stand-in for microk8s_9999.assert\n"))
	chartD, chartN := putStandIn(t, c, []byte("stand-in for traefik-41.6.0.tgz\n"))
	l := testLock(
		Artifact{Kind: KindSnap, Name: "microk8s", Channel: "1.35/stable", Revision: 9999, Source: "snapstore", Digest: snapD, Size: snapN, Assertions: assertD},
		imageEntry(t, tr.host+"/test/app:v1", img),
		Artifact{Kind: KindChart, Name: "traefik", Version: "41.6.0", Source: "https://charts.example/traefik/traefik-41.6.0.tgz", Digest: chartD, Size: chartN},
	)
	if err := (&Fetcher{Cache: c}).Fetch(ctxT(t), l); err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	if err := Install(c, l, tree); err != nil {
		t.Fatal(err)
	}
	if err := InspectTree(tree, l); err != nil {
		t.Fatalf("a freshly installed tree fails inspection: %v", err)
	}

	// Each defect is reported.
	os.Remove(filepath.Join(tree, TreeDir, "snaps", "microk8s.assert"))
	os.MkdirAll(filepath.Join(tree, "var/snap/microk8s/current"), 0o755)
	corruptLayer(t, filepath.Join(tree, TreePath(l.Artifacts[1])), img)
	os.WriteFile(filepath.Join(tree, TreePath(l.Artifacts[2])), []byte("stand-in for traefik-41.6.1.tgz\n"), 0o644)
	err := InspectTree(tree, l)
	if err == nil {
		t.Fatal("a defective tree passed inspection")
	}
	for _, want := range []string{"snap microk8s assertions", "/var/snap/microk8s exists", "image app", "chart traefik: " + filepath.Join(TreeDir, "charts", "traefik.tgz")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("inspection does not report %q: %v", want, err)
		}
	}
}
