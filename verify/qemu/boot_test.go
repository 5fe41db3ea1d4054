package qemu

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder/rootfs"
	"github.com/applbuild/applbuild/images"
	"github.com/applbuild/applbuild/verify/testenv"
)

// bootPackages is the smallest Debian 13 that boots by UEFI to a login
// prompt and grows its root at first boot: the cloud kernel with its
// initramfs, systemd, the signed boot chain images.Assemble puts on the
// ESP, and cloud-init with growpart (cloud-guest-utils, which uses sfdisk).
var bootPackages = []string{"linux-image-cloud-amd64", "initramfs-tools", "systemd-sysv", "shim-signed", "grub-efi-amd64-signed",
	"cloud-init", "cloud-guest-utils", "fdisk"}

var (
	treeOnce sync.Once
	treeDir  string
	treeErr  error
)

// bootTree returns a Debian 13 tree built with builder/rootfs (cached
// across runs in the rootfs cache).
func bootTree(t *testing.T) string {
	t.Helper()
	testenv.Short(t, "builds a Debian root file system and boots it under QEMU")
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "mmdebstrap")
	testenv.RequireTool(t, "tar")
	treeOnce.Do(func() {
		mirrors, err := rootfs.MirrorsFromEnv()
		if err != nil {
			treeErr = err
			return
		}
		spec := rootfs.Spec{
			Suite: "trixie", Variant: "apt", Architecture: "amd64",
			Sources: []rootfs.Source{{
				Name: "debian", URIs: []string{"http://deb.debian.org/debian"},
				Suites: []string{"trixie"}, Components: []string{"main"}, CheckValidUntil: true,
			}},
			Packages: bootPackages,
		}.WithMirrors(mirrors)
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		tarball, err := rootfs.Build(ctx, spec, "")
		if err != nil {
			treeErr = err
			return
		}
		treeDir, treeErr = rootfs.Tree(ctx, tarball)
	})
	if treeErr != nil {
		t.Fatal(treeErr)
	}
	return treeDir
}

var (
	diskOnce sync.Once
	disk     *images.Disk
	diskErr  error
)

// bootDisk assembles the boot tree into a UEFI disk once per test run;
// TestMain removes it.
func bootDisk(t *testing.T) *images.Disk {
	t.Helper()
	tree := bootTree(t)
	for _, p := range []string{"mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "sgdisk", "qemu-img", qemuSystemBinary} {
		testenv.RequireTool(t, p)
	}
	diskOnce.Do(func() {
		dir, err := os.MkdirTemp("", "applbuild-boot-test-")
		if err != nil {
			diskErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		disk, diskErr = images.Assemble(ctx, images.AssembleOptions{RootTree: tree, Out: filepath.Join(dir, "disk.raw")})
	})
	if diskErr != nil {
		t.Fatal(diskErr)
	}
	return disk
}

func TestMain(m *testing.M) {
	code := m.Run()
	if disk != nil {
		os.RemoveAll(filepath.Dir(disk.Path))
	}
	os.Exit(code)
}

func eventNames(evs []Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Name)
	}
	return strings.Join(s, ",")
}

// assertInOrder checks that the named events were all seen, in this order.
func assertInOrder(t *testing.T, evs []Event, names ...string) {
	t.Helper()
	at := map[string]time.Duration{}
	for _, e := range evs {
		at[e.Name] = e.At
	}
	for i, n := range names {
		if _, ok := at[n]; !ok {
			t.Errorf("no %s event; saw %s", n, eventNames(evs))
			continue
		}
		if i > 0 && at[n] < at[names[i-1]] {
			t.Errorf("%s at %s came before %s at %s", n, at[n], names[i-1], at[names[i-1]])
		}
	}
}

// logTimings reports when each milestone came, for the record of what a
// boot costs on this host.
func logTimings(t *testing.T, vm *VM) {
	t.Helper()
	t.Logf("booted with -accel %s -cpu %s -smp %d", vm.Accel, vm.CPUModel, vm.CPUs)
	for i, a := range vm.Attempts {
		t.Logf("attempt %d: %s -cpu %s, %s, err=%v", i+1, a.Accel, a.CPUModel, a.Duration.Round(100*time.Millisecond), a.Err)
	}
	for _, e := range vm.Events() {
		t.Logf("%8s  %s", e.At.Round(100*time.Millisecond), e.Name)
	}
}

// tcpListeners returns the local addresses (hex, as in /proc/net/tcp and
// tcp6) of the sockets listening on port.
func tcpListeners(t *testing.T, port int) []string {
	t.Helper()
	var addrs []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			addr, p, _ := strings.Cut(fields[1], ":")
			if n, err := strconv.ParseInt(p, 16, 32); err == nil && int(n) == port {
				addrs = append(addrs, addr)
			}
		}
	}
	return addrs
}

func sha(t *testing.T, path string) string {
	t.Helper()
	c, err := images.Sum(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.SHA256
}

// TestBootDirectKernelRealDebian boots the Debian 13 cloud kernel and
// initramfs of a real tree directly (no firmware) with the assembled disk
// as root, picking the accelerator automatically: on a host whose KVM
// cannot run the guest, the first attempt must be a KVM failure and the
// boot must then succeed under TCG.
func TestBootDirectKernelRealDebian(t *testing.T) {
	d := bootDisk(t)
	tree := bootTree(t)
	before := sha(t, d.Path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	serial := filepath.Join(t.TempDir(), "serial.log")
	port, err := FreeLocalPort()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := Boot(ctx, BootOptions{
		HostForwards: []Forward{{HostPort: port, GuestPort: 22}},
		Disk:         d.Path,
		Kernel:       filepath.Join(tree, "vmlinuz"),
		Initrd:       filepath.Join(tree, "initrd.img"),
		Append:       "root=UUID=" + d.RootUUID + " rw console=ttyS0,115200 panic=-1",
		Accel:        AccelAuto,
		Snapshot:     true,
		SerialLog:    serial,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	logTimings(t, vm)
	evs := vm.Events()
	assertInOrder(t, evs, EventKernel, EventInit, EventSystemd, EventLogin)
	for _, e := range evs {
		if e.Name == EventFirmware || e.Name == EventBootloader {
			t.Errorf("direct kernel boot showed %s: %q", e.Name, e.Line)
		}
	}
	log, _ := os.ReadFile(serial)
	if !strings.Contains(string(log), "root=UUID="+d.RootUUID) {
		t.Error("the console does not show the kernel command line given")
	}

	// The forward listens on loopback only, never on the host's other
	// addresses.
	if addrs := tcpListeners(t, port); len(addrs) != 1 || addrs[0] != "0100007F" {
		t.Errorf("host port %d listens on %v (hex, /proc/net/tcp), want only 127.0.0.1 (0100007F)", port, addrs)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second); err != nil {
		t.Errorf("forwarded port: %v", err)
	} else {
		c.Close()
	}

	// Accelerator choice: KVM only counts if the guest ran under it.
	last := vm.Attempts[len(vm.Attempts)-1]
	if last.Err != nil || last.Accel != vm.Accel {
		t.Errorf("last attempt %+v is not the booted one (%s)", last, vm.Accel)
	}
	if kvmOpens() == nil && vm.Accel == AccelTCG {
		if len(vm.Attempts) < 2 || vm.Attempts[0].Accel != AccelKVM || vm.Attempts[0].Err == nil {
			t.Errorf("/dev/kvm opens but the boot went to TCG without a failed KVM attempt: %+v", vm.Attempts)
		} else if d := vm.Attempts[0].Duration; d > kvmProbeSilence+10*time.Second {
			t.Errorf("deciding that KVM does not work took %s", d)
		}
	}
	if err := vm.Stop(); err != nil {
		t.Fatal(err)
	}
	if after := sha(t, d.Path); after != before {
		t.Error("a snapshot boot changed the disk image")
	}
}

// TestBootKVMFailureIsDetected asks for KVM explicitly. Where KVM works
// the guest boots; where /dev/kvm is a paravirtual KVM that cannot run an
// ordinary kernel (this build host), Boot must say so with ErrKVM within
// seconds rather than wait for a timeout.
func TestBootKVMFailureIsDetected(t *testing.T) {
	if err := kvmOpens(); err != nil {
		t.Skipf("no usable /dev/kvm here: %v", err)
	}
	tree := bootTree(t)
	testenv.RequireTool(t, qemuSystemBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	vm, err := Boot(ctx, BootOptions{
		Kernel: filepath.Join(tree, "vmlinuz"),
		Initrd: filepath.Join(tree, "initrd.img"),
		Append: "console=ttyS0,115200 panic=-1",
		Accel:  AccelKVM,
		// The initramfs stops without a root device; under working
		// KVM, the kernel's first userspace program is enough.
		ReadyMarker: "Run /init as init process",
	})
	if err == nil {
		defer vm.Stop()
		t.Logf("KVM works on this host: ready after %s", vm.Attempts[0].Duration)
		if vm.Accel != AccelKVM {
			t.Errorf("asked for KVM, ran %s", vm.Accel)
		}
		return
	}
	if !errors.Is(err, ErrKVM) {
		t.Fatalf("got %v, want ErrKVM or a boot", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s to notice that KVM cannot run the guest", d)
	}
	t.Logf("KVM cannot run the guest here: %v", err)
}

// TestBootRealKernelPanicIsDetectedAndRetried boots the real kernel with
// no initramfs and a root device that does not exist: it panics. Boot must
// report ErrPanic from the console as soon as it happens, after the
// configured number of TCG attempts, keeping each failed attempt's console.
func TestBootRealKernelPanicIsDetectedAndRetried(t *testing.T) {
	tree := bootTree(t)
	testenv.RequireTool(t, qemuSystemBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	serial := filepath.Join(t.TempDir(), "serial.log")
	start := time.Now()
	_, err := Boot(ctx, BootOptions{
		Kernel:    filepath.Join(tree, "vmlinuz"),
		Append:    "root=/dev/vdz console=ttyS0,115200 panic=-1",
		Accel:     AccelTCG,
		Attempts:  2,
		SerialLog: serial,
	})
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("got %v, want ErrPanic", err)
	}
	t.Logf("%v (after %s)", err, time.Since(start).Round(time.Second))
	if !strings.Contains(err.Error(), "#2 tcg") {
		t.Errorf("error does not record a second attempt: %v", err)
	}
	first, rerr := os.ReadFile(serial + ".attempt1")
	if rerr != nil || !strings.Contains(string(first), "Kernel panic - not syncing") {
		t.Errorf("first attempt's console not kept with its panic (%v)", rerr)
	}
	if time.Since(start) > 4*time.Minute {
		t.Errorf("two panicking boots took %s; the panic should end each at once", time.Since(start))
	}
}

// TestBootUEFIDiskRealDebian boots the assembled disk the way a hypervisor
// does: OVMF finds \EFI\BOOT\BOOTX64.EFI (shim), shim runs GRUB, GRUB
// reads the ESP's grub.cfg and boots the kernel from the ext4 root by UUID.
// The virtual disk is 4 GiB, far more than the image, and a NoCloud seed
// is attached as a CD-ROM: at first boot cloud-init must find the seed and
// grow the root partition and file system to the whole disk.
func TestBootUEFIDiskRealDebian(t *testing.T) {
	d := bootDisk(t)
	fw, err := FindFirmware(false)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireTool(t, "xorriso")
	seedDir := t.TempDir()
	for name, data := range map[string]string{
		"meta-data": "instance-id: boot-test\nlocal-hostname: boottest\n",
		// The root's size as the guest sees it, on the console.
		"user-data": "#cloud-config\nruncmd:\n  - [sh, -c, 'echo GROWN root_mib=$(df -B1M --output=size / | tail -1) > /dev/ttyS0']\n",
		// Nothing to configure; without a network the boot is shorter.
		"network-config": "network:\n  config: disabled\n",
	} {
		if err := os.WriteFile(filepath.Join(seedDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	seed := filepath.Join(t.TempDir(), "seed.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", "CIDATA", "-J", "-r", "-o", seed, seedDir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	// A 4 GiB disk in front of the image, as a hypervisor template
	// clone with a larger disk would be.
	const diskMiB = 4096
	big := filepath.Join(t.TempDir(), "vm.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", d.Path, big, strconv.Itoa(diskMiB)+"M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	before := sha(t, d.Path)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	serial := filepath.Join(t.TempDir(), "serial.log")
	vm, err := Boot(ctx, BootOptions{Disk: big, SeedISO: seed, Firmware: fw, Accel: AccelAuto, ReadyMarker: "GROWN root_mib=", SerialLog: serial})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	logTimings(t, vm)
	evs := vm.Events()
	assertInOrder(t, evs, EventFirmware, EventBootloader, EventKernel, EventInit, EventSystemd,
		"cloud-init:init-local", "cloud-init:modules:final", EventReady)
	log, _ := os.ReadFile(serial)
	if !strings.Contains(string(log), "root=UUID="+d.RootUUID) {
		t.Error("the kernel did not get the command line from the ESP's grub.cfg")
	}
	if !strings.Contains(string(log), "[sr0] scsi3-mmc drive") {
		t.Error("the guest kernel did not find the seed ISO as a CD-ROM (sr0)")
	}
	// The shell splits df's padded number off: "GROWN root_mib= 3954".
	m := regexp.MustCompile(`GROWN root_mib= *(\d+)`).FindSubmatch(log)
	if m == nil {
		i := strings.Index(string(log), "GROWN")
		t.Fatalf("no root size on the console: %q", string(log[i:min(i+80, len(log))]))
	}
	rootMiB, _ := strconv.Atoi(string(m[1]))
	imageRootMiB := int(d.Layout.Root.Size / images.MiB)
	t.Logf("root file system: %d MiB in the image, %d MiB after first boot on a %d MiB disk", imageRootMiB, rootMiB, diskMiB)
	// ext4 reports its size less the journal and metadata: a few
	// percent below the partition, which ends about 65 MiB before the
	// disk does (ESP and GPT).
	if rootMiB < diskMiB*9/10 || rootMiB <= imageRootMiB {
		t.Errorf("root is %d MiB after first boot, want it grown from %d MiB to about %d MiB", rootMiB, imageRootMiB, diskMiB)
	}
	if err := vm.Stop(); err != nil {
		t.Fatal(err)
	}
	if sha(t, d.Path) != before {
		t.Error("booting an overlay changed the image")
	}
}

// TestBootUEFISecureBootRealDebian boots the assembled disk with Secure
// Boot enforced by OVMF with Microsoft's keys enrolled, as on a Hyper-V
// Gen2 VM with the "Microsoft UEFI Certificate Authority" template: shim
// (Microsoft-signed), GRUB and the kernel (Debian-signed) must all pass.
func TestBootUEFISecureBootRealDebian(t *testing.T) {
	d := bootDisk(t)
	fw, err := FindFirmware(true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	vm, err := Boot(ctx, BootOptions{Disk: d.Path, Firmware: fw, Accel: AccelAuto, Snapshot: true, ReadyMarker: "Run /init as init process"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	logTimings(t, vm)
	log, _ := os.ReadFile(vm.SerialLog)
	if !strings.Contains(string(log), "Secure boot enabled") {
		t.Error("the kernel does not report Secure Boot as enabled")
	}
}
