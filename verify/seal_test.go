package verify_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/verify"
	"github.com/applbuild/applbuild/verify/testenv"
)

// TestGatewayImageIsSealed inspects the finished disk image, not the build
// steps: nothing that identifies a machine or a site, no state of the
// build host, no password that works, cloud-init pinned to the seed, and an
// initramfs that can find its disk on Hyper-V and virtio.
func TestGatewayImageIsSealed(t *testing.T) {
	testenv.Short(t, "bakes an image")
	testenv.RequireTool(t, "debugfs")
	testenv.RequireTool(t, "lsinitramfs")
	img, err := verify.OpenRaw(rawOf(bakeGateway(t)))
	if err != nil {
		t.Fatal(err)
	}
	// What every appliance image must not carry (shared with the node).
	checkSealedImage(t, img)
	sshd, _ := img.ReadFile("/etc/ssh/sshd_config.d/50-appliance.conf")
	if !strings.Contains(string(sshd), "PasswordAuthentication no") || !strings.Contains(string(sshd), "PermitRootLogin no") {
		t.Errorf("sshd allows passwords or root: %q", sshd)
	}
	// The agent and its first-boot unit are there and enabled.
	if es, _ := img.ReadDir("/etc/systemd/system/multi-user.target.wants"); !hasEntry(es, "appliance-apply.service") {
		t.Error("appliance-apply.service is not enabled")
	}
	if es, _ := img.ReadDir("/usr/bin"); !hasEntry(es, "appliance") || !hasEntry(es, "hainfo") {
		t.Error("the appliance agent or hainfo is missing from /usr/bin")
	}
	if es, _ := img.ReadDir("/usr/sbin"); !hasEntry(es, "growpart") {
		// growpart lets cloud-init grow the root partition to the disk.
		if es2, _ := img.ReadDir("/usr/bin"); !hasEntry(es2, "growpart") {
			t.Error("growpart (cloud-guest-utils) is missing: the root would not grow at first boot")
		}
	}
	// The initramfs can find the root disk and NIC on Hyper-V and virtio.
	boot, _ := img.ReadDir("/boot")
	var initrd string
	for _, e := range boot {
		if strings.HasPrefix(e.Name, "initrd.img-") {
			initrd = "/boot/" + e.Name
		}
	}
	if initrd == "" {
		t.Fatal("no initrd in /boot")
	}
	local := filepath.Join(t.TempDir(), "initrd.img")
	if err := img.Dump(initrd, local); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("lsinitramfs", local).Output()
	if err != nil {
		t.Fatalf("lsinitramfs: %v", err)
	}
	for _, mod := range []string{"hv_vmbus", "hv_storvsc", "hv_netvsc", "virtio_blk", "virtio_scsi", "virtio_net"} {
		if !strings.Contains(string(out), "/"+mod+".ko") {
			t.Errorf("initramfs lacks %s", mod)
		}
	}
}

func hasEntry(es []verify.Entry, name string) bool {
	for _, e := range es {
		if e.Name == name {
			return true
		}
	}
	return false
}
