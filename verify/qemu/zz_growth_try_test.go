package qemu

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/applbuild/applbuild/images"
)

func TestZZGrowthTry(t *testing.T) {
	ctx := context.Background()
	d, err := images.Assemble(ctx, images.AssembleOptions{RootTree: "/var/tmp/imgdev/rootfs-ci", Out: "/var/tmp/imgdev/grow/disk.raw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", d.Layout)
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", "-F", "raw", "-b", d.Path, "/var/tmp/imgdev/grow/big.qcow2", "4G").CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	vm, err := Boot(ctx, BootOptions{Disk: "/var/tmp/imgdev/grow/big.qcow2", SeedISO: "/var/tmp/imgdev/grow/seed.iso", Accel: AccelTCG, ReadyMarker: "GROWCHECK", SerialLog: "/var/tmp/imgdev/grow/serial.log", WorkDir: "/var/tmp/imgdev/grow"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	logTimings(t, vm)
	for _, e := range vm.Events() {
		if e.Name == EventReady {
			t.Log(e.Line)
		}
	}
}
