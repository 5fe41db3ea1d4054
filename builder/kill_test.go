package builder_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/testenv"
)

// TestKilledBuildLeavesNoPartialOutput kills `applbuild image` with SIGKILL
// (no cleanup runs) at several moments of the export and checks that every
// file under an output name is complete: qemu-img accepts it and the
// manifest, if present, lists it. A killed build leaves the old output or
// none, never a truncated image.
func TestKilledBuildLeavesNoPartialOutput(t *testing.T) {
	testenv.Short(t, "bakes images")
	testenv.RequireRoot(t)
	for _, tool := range []string{"mmdebstrap", "qemu-img", "mkfs.ext4", "mkfs.vfat", "mcopy", "sgdisk", "go"} {
		testenv.RequireTool(t, tool)
	}
	bin := t.TempDir()
	for _, p := range []string{"applbuild", "appliance"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, p), "github.com/applbuild/applbuild/cmd/"+p)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", p, err, out)
		}
	}
	cache, _ := os.UserCacheDir()
	if c := os.Getenv("APPLBUILD_CACHE"); c != "" {
		cache = c
	} else {
		cache = filepath.Join(cache, "applbuild")
	}
	workDirs := func() map[string]bool {
		m := map[string]bool{}
		found, _ := filepath.Glob(filepath.Join(cache, "work", "gateway-*"))
		for _, d := range found {
			m[d] = true
		}
		return m
	}
	var killedWork []string
	// Kill when the qcow2's temporary file appears, 3 s into writing it,
	// and when the vhdx's appears (the qcow2 is then complete).
	for _, at := range []struct {
		marker string
		delay  time.Duration
	}{{".qcow2.", 0}, {".qcow2.", 3 * time.Second}, {".vhdx.", 0}} {
		delay := at.delay
		out := t.TempDir()
		before := workDirs()
		cmd := exec.Command(filepath.Join(bin, "applbuild"), "image", "gateway", "--formats", "qcow2,vhdx", "--out", out, "--version", "kill")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(8 * time.Minute)
		for !hasTemp(out, at.marker) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(delay)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		// Other tests may bake at the same time: the killed build's
		// folders are those that appeared during it and that no live
		// build holds locked (a live build keeps its .lock flocked).
		for d := range workDirs() {
			if !before[d] && unlocked(d) {
				killedWork = append(killedWork, d)
			}
		}
		for _, f := range []string{"gateway-kill.qcow2", "gateway-kill.vhdx"} {
			p := filepath.Join(out, f)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if b, err := exec.Command("qemu-img", "check", p).CombinedOutput(); err != nil {
				t.Errorf("after a kill %s after %s appeared, %s exists but is damaged: %v\n%s", delay, at.marker, f, err, b)
			}
		}
		t.Logf("killed %s after a %s temporary appeared: outputs %v", delay, at.marker, names(out))
	}
	// The work folders of killed builds are removed by the next build.
	if len(killedWork) == 0 {
		t.Fatal("the killed builds left no work folder to clean up; the test did not kill them mid-build")
	}
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "applbuild"), "image", "gateway", "--formats", "qcow2", "--out", out, "--version", "after")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a build after the killed ones: %v\n%s", err, b)
	}
	for _, d := range killedWork {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("the work folder of a killed build is left behind: %s", d)
		}
	}
}

// unlocked reports whether no running build holds the work folder's lock.
func unlocked(dir string) bool {
	f, err := os.Open(filepath.Join(dir, ".lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

func hasTemp(dir, marker string) bool {
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), marker) {
			return true
		}
	}
	return false
}

func names(dir string) []string {
	es, _ := os.ReadDir(dir)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
