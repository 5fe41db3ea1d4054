package rootfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/testenv"
)

// TestBuildGatewayTestProfile builds the gateway's test tree from the Debian
// archive into an empty cache, runs haproxy from it, and checks that a
// second Build is served from the cache without mmdebstrap.
func TestBuildGatewayTestProfile(t *testing.T) {
	testenv.Short(t, "builds a root filesystem from the Debian archive")
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "mmdebstrap")
	testenv.RequireTool(t, "tar")
	mirrors, err := MirrorsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	spec := gatewaySpec(t, "test").WithMirrors(mirrors)
	cache := t.TempDir()
	hash, err := spec.Hash()
	if err != nil {
		t.Fatal(err)
	}
	// What a build killed half-way leaves behind: it must neither count as
	// a cache entry nor survive the next build.
	stale := filepath.Join(cache, "rootfs", hash+tmpInfix+"killed")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "rootfs.tar"), []byte("truncated"), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	tarball, err := Build(ctx, spec, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold build: %s", time.Since(start).Round(time.Millisecond))
	if want := filepath.Join(cache, "rootfs", hash+".tar"); tarball != want {
		t.Fatalf("tarball at %s, want the content address %s", tarball, want)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed build's directory %s is still there (%v)", stale, err)
	}

	pkgs, err := ReadPackages(tarball)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, p := range pkgs {
		versions[p.Name] = p.Version
	}
	if !strings.HasPrefix(versions["haproxy"], "3.2.") {
		t.Errorf("package list records haproxy %q, want 3.2.x from forky", versions["haproxy"])
	}
	if versions["lua5.4"] == "" || versions["base-files"] == "" {
		t.Errorf("package list lacks lua5.4 or base-files: %d entries", len(pkgs))
	}

	root, err := Tree(ctx, tarball)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "chroot", root, "/usr/sbin/haproxy", "-vv").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -vv in the tree: %v\n%s", err, out)
	}
	vv := string(out)
	for _, re := range []string{
		`(?m)^HAProxy version 3\.2\.\d+`,
		`(?m)^Built with Lua version : Lua 5\.4\.\d+`,
		`(?m)^Built with the Prometheus exporter as a service`,
		`(?m)^Available services : .*prometheus-exporter`,
	} {
		if !regexp.MustCompile(re).MatchString(vv) {
			t.Errorf("haproxy -vv does not match %s:\n%s", re, firstLines(vv, 30))
		}
	}
	// Installed version and running version agree.
	if !strings.Contains(vv, "HAProxy version "+strings.SplitN(versions["haproxy"], "-", 2)[0]) {
		t.Errorf("package list says haproxy %s but the binary says:\n%s", versions["haproxy"], firstLines(vv, 1))
	}

	sources, err := os.ReadFile(filepath.Join(root, "etc/apt/sources.list"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(sources)), "\n") {
		if line == "" {
			continue
		}
		off := strings.Contains(line, "check-valid-until=no")
		if forky := strings.Contains(line, " forky "); off != forky {
			t.Errorf("tree's sources.list line %q: the expiry check should be off on forky and only there", line)
		}
	}
	prefs, err := os.ReadFile(filepath.Join(root, "etc/apt/preferences.d", prefsName))
	if err != nil || string(prefs) != spec.Preferences() {
		t.Errorf("tree's apt preferences are %q (%v), want the pins", prefs, err)
	}

	// The second call must not run mmdebstrap: with an empty PATH it could
	// not, so success means the cache answered.
	t.Setenv("PATH", "")
	start = time.Now()
	again, err := Build(ctx, spec, cache)
	if err != nil {
		t.Fatalf("second Build with the same spec ran something: %v", err)
	}
	t.Logf("warm call: %s", time.Since(start).Round(time.Microsecond))
	if again != tarball {
		t.Fatalf("second Build returned %s, want %s", again, tarball)
	}
	if tree, err := Tree(ctx, tarball); err != nil || tree != root {
		t.Fatalf("second Tree returned %s, %v; want the cached %s", tree, err, root)
	}
}

// TestBuildCancelledLeavesNoEntry stops a build soon after it starts and
// checks nothing is left under the final name.
func TestBuildCancelledLeavesNoEntry(t *testing.T) {
	testenv.Short(t, "starts a root filesystem build")
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "mmdebstrap")
	spec := gatewaySpec(t, "test")
	cache := t.TempDir()
	// Cancel while packages are being installed, when mmdebstrap has
	// proc, sysfs and devpts mounted in its tree: the hardest moment to
	// clean up after.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, spec, cache)
		done <- err
	}()
	var err error
	var cancelledAt time.Time
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-poll.C:
			if m, _ := mountsUnder(cache); len(m) > 0 && cancelledAt.IsZero() {
				t.Logf("cancelling with %d mounts in the build tree", len(m))
				cancelledAt = time.Now()
				cancel()
			}
		}
	}
	if cancelledAt.IsZero() {
		t.Fatalf("the build ended (%v) before any mount appeared in its tree; nothing was cancelled", err)
	}
	if err == nil {
		t.Fatal("a cancelled build reported success")
	}
	if took := time.Since(cancelledAt); took > 15*time.Second {
		t.Errorf("cancelled build returned %s after the cancel; it should stop mmdebstrap at once", took)
	}
	if m, err := mountsUnder(cache); err != nil || len(m) > 0 {
		t.Errorf("cancelled build left mounts %v (%v)", m, err)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "rootfs"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), lockSuffix) {
			t.Errorf("cancelled build left %s in the cache", e.Name())
		}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
