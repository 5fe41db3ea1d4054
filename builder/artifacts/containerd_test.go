package artifacts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/testenv"
)

// TestSideloadArchiveImportsIntoContainerd runs Debian's containerd with a
// private root, state and socket, and imports a cached image archive with
// `ctr images import`, the way a node sideloads its images.
func TestSideloadArchiveImportsIntoContainerd(t *testing.T) {
	testenv.RequireRoot(t)
	containerd := testenv.RequireTool(t, "containerd")
	ctr := testenv.RequireTool(t, "ctr")

	tr := newTestRegistry(t)
	img := tr.push(t, "test/app", "v1")
	a := imageEntry(t, tr.host+"/test/app:v1", img)
	c := &Cache{Dir: t.TempDir()}
	if err := (&Fetcher{Cache: c}).Fetch(ctxT(t), testLock(a)); err != nil {
		t.Fatal(err)
	}

	// containerd's socket path must be short; a fresh dir under /tmp is.
	dir, err := os.MkdirTemp("/tmp", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	cfg := filepath.Join(dir, "config.toml")
	// The CRI plugin is off: it would want CNI and a kubelet.
	os.WriteFile(cfg, []byte(fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var dlog bytes.Buffer
	d := exec.CommandContext(ctx, containerd, "--config", cfg)
	d.Stdout, d.Stderr = &dlog, &dlog
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Kill()
		d.Wait()
	})
	run := func(args ...string) (string, error) {
		argv := append([]string{"--address", sock, "--namespace", "applbuild-test"}, args...)
		out, err := exec.CommandContext(ctx, ctr, argv...).CombinedOutput()
		return string(out), err
	}
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		if _, err := run("version"); err == nil {
			ready = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ready {
		t.Fatalf("containerd did not answer within 10 s:\n%s", dlog.String())
	}
	out, err := run("images", "import", "--all-platforms", c.Path(a.Digest))
	if err != nil {
		t.Fatalf("ctr images import: %v\n%s\ncontainerd log:\n%s", err, out, dlog.String())
	}
	out, err = run("images", "ls")
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	t.Logf("ctr images ls:\n%s", out)
	var found bool
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, tr.host+"/test/app:v1") && strings.Contains(line, a.Digest) {
			found = true
		}
	}
	if !found {
		t.Fatalf("ctr images ls does not list %s at %s", tr.host+"/test/app:v1", a.Digest)
	}
}
