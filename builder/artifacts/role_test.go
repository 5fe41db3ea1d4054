package artifacts

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/roles/node"
)

// The node lock in the repository has no digests yet (this machine reaches
// no snap store or registry); every use of it must refuse and say how to
// pin it, and a gateway build needs no artifacts at all.
func TestNodeLockRefusedUntilPinned(t *testing.T) {
	l, err := ForRole("node")
	if err != nil {
		t.Fatalf("the embedded node lock does not parse: %v", err)
	}
	kinds := map[string]int{}
	for _, a := range l.Artifacts {
		kinds[a.Kind]++
	}
	if kinds[KindSnap] < 3 || kinds[KindImage] < 5 || kinds[KindChart] != 1 {
		t.Errorf("node lock lists %v; want microk8s, its base and snapd, the CNI, CoreDNS, pause, Traefik and APIServer2 images, and the Traefik chart", kinds)
	}
	// The agent installs Traefik from where Install puts the chart.
	for _, a := range l.Artifacts {
		if a.Kind == KindChart {
			if want := filepath.Join(node.ArtifactsDir, node.TraefikChartFile); a.Name != "traefik" || TreePath(a) != want {
				t.Errorf("chart %s is carried at %s; the agent installs Traefik from %s", a.Name, TreePath(a), want)
			}
		}
	}
	_, _, err = Prepare("node", t.TempDir(), "")
	if err == nil {
		t.Fatal("an unpinned node lock was accepted for a build")
	}
	if l.RequirePinned() == nil {
		// Pinned by --update: then an empty cache must name the commands.
		if !strings.Contains(err.Error(), "applbuild fetch node") || !strings.Contains(err.Error(), "--bundle") {
			t.Errorf("missing artifacts: %v", err)
		}
	} else if !strings.Contains(err.Error(), "applbuild fetch node --update") {
		t.Errorf("unpinned lock: %v", err)
	}
	t.Logf("refused: %v", err)
	if HasLock("gateway") {
		t.Error("the gateway role has an artifacts lock")
	}
}
