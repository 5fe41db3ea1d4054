// Package images turns a prepared root file system tree into a bootable UEFI
// disk image and converts it to the formats hypervisors import.
//
// A disk is assembled from files only: no loop devices, no mounts, no root
// privileges beyond reading the tree. mkfs.ext4 -d writes the root file
// system straight into the image at the root partition's offset, mkfs.vfat
// and mtools write the ESP at its offset, and sgdisk writes the GPT last.
//
// The image is small; the root partition is last on the disk so it can take
// whatever size the hypervisor gives the virtual disk. At first boot
// cloud-init's growpart module (growpart from cloud-guest-utils) extends the
// partition and its resizefs module grows the ext4 online; both are in
// cloud-init's default module list, so the image needs only the
// cloud-guest-utils package next to cloud-init.
package images

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	log "github.com/sirupsen/logrus"
)

// DefaultRootLabel is the ext4 label of the root file system unless set.
const DefaultRootLabel = "appliance-root"

// DefaultKernelArgs put the console on both the screen and the first serial
// port; the last console= is /dev/console, so systemd and cloud-init write
// to the serial port, which is what hypervisor consoles and the boot
// harness read.
const DefaultKernelArgs = "console=tty0 console=ttyS0,115200"

// AssembleOptions describes one disk to assemble.
type AssembleOptions struct {
	// RootTree is the prepared root file system: a Debian tree with a
	// kernel and initramfs, shim-signed and grub-efi-amd64-signed.
	RootTree string
	// Out is where the raw disk image is written.
	Out string
	// Size is the virtual disk size in bytes. Zero sizes the disk from
	// the tree with some headroom; the root file system grows to the
	// real disk at first boot either way.
	Size int64
	// ESPSize is the ESP size in bytes (DefaultESPSize when zero).
	ESPSize int64
	// RootLabel is the ext4 label (DefaultRootLabel when empty).
	RootLabel string
	// RootUUID is the ext4 UUID the boot loader and kernel find the
	// root by; random when empty.
	RootUUID string
	// DiskGUID is the GPT disk GUID; random when empty. The partition
	// GUIDs are derived from it, so a fixed DiskGUID gives fixed ones.
	DiskGUID string
	// ESPVolumeID is the FAT volume ID as 8 hex digits; random when empty.
	ESPVolumeID string
	// KernelArgs are appended to "root=UUID=... rw" in the GRUB entry
	// (DefaultKernelArgs when empty).
	KernelArgs string
}

// Disk describes an assembled disk image.
type Disk struct {
	Path        string
	Layout      Layout
	RootLabel   string
	RootUUID    string
	DiskGUID    string
	ESPGUID     string
	RootGUID    string
	ESPVolumeID string
	// Kernel and Initrd are the paths inside the root file system the
	// GRUB entry boots.
	Kernel, Initrd string
	// Cmdline is the kernel command line of the GRUB entry.
	Cmdline string
}

// ESP paths of the boot chain. Firmware without a boot entry for the disk
// (every fresh VM) runs the removable-media path \EFI\BOOT\BOOTX64.EFI;
// shim then loads grubx64.efi (and mmx64.efi when a MOK needs enrolling)
// from its own directory. Debian's signed GRUB is built with the prefix
// /EFI/debian and reads $prefix/grub.cfg, falling back to grub.cfg beside
// itself, so the config goes to both places.
var espFiles = []struct{ tree, esp string }{
	{"/usr/lib/shim/shimx64.efi.signed", "::/EFI/BOOT/BOOTX64.EFI"},
	{"/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "::/EFI/BOOT/grubx64.efi"},
	{"/usr/lib/shim/mmx64.efi.signed", "::/EFI/BOOT/mmx64.efi"},
}

var espConfigs = []string{"::/EFI/BOOT/grub.cfg", "::/EFI/debian/grub.cfg"}

// espPackages names the Debian package that ships each ESP source file,
// for the error when one is missing.
var espPackages = map[string]string{
	"/usr/lib/shim/shimx64.efi.signed":                   "shim-signed",
	"/usr/lib/shim/mmx64.efi.signed":                     "shim-helpers-amd64-signed",
	"/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": "grub-efi-amd64-signed",
}

var (
	uuidRe   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	volIDRe  = regexp.MustCompile(`^[0-9a-fA-F]{8}$`)
	labelMax = 16
)

// stageHook, when set, is called as each assembly stage begins. Tests use it
// to interrupt a build at a known point.
var stageHook func(stage string)

func stage(name string) {
	log.WithField("stage", name).Debug("assemble")
	if stageHook != nil {
		stageHook(name)
	}
}

// Assemble writes a bootable GPT disk image from opts.RootTree to opts.Out.
// It builds into a temporary sibling of Out and renames it into place only
// when complete, so an interrupted build leaves no file under Out.
func Assemble(ctx context.Context, opts AssembleOptions) (*Disk, error) {
	d, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	bytes, inodes, err := treeUsage(opts.RootTree)
	if err != nil {
		return nil, err
	}
	size := opts.Size
	if size == 0 {
		// Headroom for the journal, inode tables, reserved blocks and
		// a little free space; growpart takes it to the real size.
		size = MiB + espSizeOr(opts.ESPSize) + roundUp(bytes+bytes/4+192*MiB, 64*MiB) + MiB
	}
	d.Layout, err = NewLayout(size, opts.ESPSize)
	if err != nil {
		return nil, err
	}
	if need := bytes + bytes/20 + 48*MiB; d.Layout.Root.Size < need {
		return nil, fmt.Errorf("disk size %d MiB is too small for root tree %s (%d MiB of files): want at least %d MiB, or 0 to size it from the tree",
			d.Layout.DiskSize/MiB, opts.RootTree, bytes/MiB, (d.Layout.Root.Start+need)/MiB+2)
	}

	esp, err := espSources(opts.RootTree)
	if err != nil {
		return nil, err
	}
	d.Kernel, d.Initrd = esp.boot.Kernel, esp.boot.Initrd

	tmp, err := tempSibling(opts.Out)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "applbuild-esp-")
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := writeDisk(ctx, tmp, work, d, opts.RootTree, inodes, esp); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("assemble %s: %w", opts.Out, err)
	}
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("assemble %s: %w", opts.Out, err)
	}
	if err := commit(tmp, opts.Out); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	d.Path = opts.Out
	return d, nil
}

func espSizeOr(n int64) int64 {
	if n == 0 {
		return DefaultESPSize
	}
	return n
}

// prepare validates the options and fills in the identifiers.
func prepare(opts AssembleOptions) (*Disk, error) {
	if opts.RootTree == "" {
		return nil, fmt.Errorf("no root tree given: want the directory holding the prepared root file system")
	}
	if fi, err := os.Stat(opts.RootTree); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root tree %s is not a directory: want the directory holding the prepared root file system", opts.RootTree)
	}
	if opts.Out == "" {
		return nil, fmt.Errorf("no output path given: want the path of the raw disk image to write")
	}
	if opts.Size < 0 {
		return nil, fmt.Errorf("disk size %d is not valid: want a size in bytes, or 0 to size it from the tree", opts.Size)
	}
	d := &Disk{RootLabel: opts.RootLabel, RootUUID: opts.RootUUID, DiskGUID: opts.DiskGUID, ESPVolumeID: opts.ESPVolumeID}
	if d.RootLabel == "" {
		d.RootLabel = DefaultRootLabel
	}
	if len(d.RootLabel) > labelMax || strings.ContainsAny(d.RootLabel, " \t\n\"'") {
		return nil, fmt.Errorf("root label %q is not valid: want at most %d characters without spaces or quotes", d.RootLabel, labelMax)
	}
	var err error
	for _, f := range []struct {
		name string
		v    *string
	}{{"root UUID", &d.RootUUID}, {"disk GUID", &d.DiskGUID}} {
		if *f.v == "" {
			if *f.v, err = randomUUID(); err != nil {
				return nil, err
			}
		}
		if !uuidRe.MatchString(*f.v) {
			return nil, fmt.Errorf("%s %q is not valid: want a UUID like 0b6f0a84-6d0c-4b43-9d2a-8d3c8f1c2a11", f.name, *f.v)
		}
		*f.v = strings.ToLower(*f.v)
	}
	if d.ESPVolumeID == "" {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		d.ESPVolumeID = hex.EncodeToString(b)
	}
	if !volIDRe.MatchString(d.ESPVolumeID) {
		return nil, fmt.Errorf("ESP volume ID %q is not valid: want 8 hex digits like 1a2b3c4d", d.ESPVolumeID)
	}
	d.ESPVolumeID = strings.ToLower(d.ESPVolumeID)
	d.ESPGUID = derivedUUID(d.DiskGUID, "esp")
	d.RootGUID = derivedUUID(d.DiskGUID, "root")
	args := opts.KernelArgs
	if args == "" {
		args = DefaultKernelArgs
	}
	d.Cmdline = "root=UUID=" + d.RootUUID + " rw " + args
	return d, nil
}

type espSet struct {
	files map[string]string // ESP path -> host path
	boot  bootFiles
}

func espSources(root string) (espSet, error) {
	s := espSet{files: map[string]string{}}
	for _, f := range espFiles {
		p, err := regularInTree(root, f.tree)
		if err != nil {
			return s, fmt.Errorf("root tree %s lacks %s (%v): install %s in the tree", root, f.tree, err, espPackages[f.tree])
		}
		s.files[f.esp] = p
	}
	var err error
	s.boot, err = findBootFiles(root)
	return s, err
}

func writeDisk(ctx context.Context, img, work string, d *Disk, tree string, inodes int64, esp espSet) error {
	l := d.Layout
	if err := os.Truncate(img, l.DiskSize); err != nil {
		return err
	}

	stage("root filesystem")
	args := []string{
		"-q", "-F", "-t", "ext4",
		// 4 KiB blocks and the "default" usage type: a small image
		// would otherwise get 1 KiB blocks and 128-byte inodes (no
		// timestamps past 2038), and it grows at first boot anyway.
		"-b", "4096", "-T", "default",
		"-L", d.RootLabel, "-U", d.RootUUID,
		// Directory hashes seeded from the UUID, so the same tree and
		// UUID give the same directory layout.
		"-E", fmt.Sprintf("offset=%d,root_owner=0:0,nodiscard,hash_seed=%s", l.Root.Start, d.RootUUID),
		"-d", tree,
	}
	// Room for every inode of the tree twice over; the default ratio
	// (one per 16 KiB) is too few for a tree of many small files in a
	// tightly sized image.
	if def := l.Root.Size / 16384; inodes*2 > def {
		args = append(args, "-N", strconv.FormatInt(inodes*2, 10))
	}
	args = append(args, img, strconv.FormatInt(l.Root.Size/1024, 10)+"k")
	if err := mkfsExt4(ctx, args...); err != nil {
		return err
	}

	stage("esp")
	startSector := l.ESP.Start / sectorSize
	if err := mkfsVfat(ctx,
		"-F", "32", "-S", strconv.Itoa(sectorSize), "-s", strconv.Itoa(sectorsPerCluster(l.ESP.Size)),
		"-h", strconv.FormatInt(startSector, 10), "--offset", strconv.FormatInt(startSector, 10),
		"-n", "ESP", "-i", d.ESPVolumeID,
		img, strconv.FormatInt(l.ESP.Size/1024, 10)); err != nil {
		return err
	}
	fat := fmt.Sprintf("%s@@%d", img, l.ESP.Start)
	if err := mmd(ctx, "-i", fat, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"); err != nil {
		return err
	}
	for _, f := range espFiles {
		if err := mcopy(ctx, "-i", fat, esp.files[f.esp], f.esp); err != nil {
			return err
		}
	}
	cfg := filepath.Join(work, "grub.cfg")
	if err := os.WriteFile(cfg, []byte(grubConfig(d)), 0o644); err != nil {
		return err
	}
	for _, dst := range espConfigs {
		if err := mcopy(ctx, "-i", fat, cfg, dst); err != nil {
			return err
		}
	}

	// The GPT goes last: mkfs tools may clear sectors around the file
	// systems they make, never the other way round.
	stage("partition table")
	last := func(p Partition) int64 { return p.End()/sectorSize - 1 }
	return sgdisk(ctx, "--clear",
		"--disk-guid="+d.DiskGUID,
		fmt.Sprintf("--new=1:%d:%d", l.ESP.Start/sectorSize, last(l.ESP)),
		"--typecode=1:"+l.ESP.TypeGUID, "--change-name=1:"+l.ESP.Name, "--partition-guid=1:"+d.ESPGUID,
		fmt.Sprintf("--new=2:%d:%d", l.Root.Start/sectorSize, last(l.Root)),
		"--typecode=2:"+l.Root.TypeGUID, "--change-name=2:"+l.Root.Name, "--partition-guid=2:"+d.RootGUID,
		img)
}

// sectorsPerCluster picks the largest FAT32 cluster (up to 4 KiB) that
// still leaves the 65525 clusters FAT32 must have; below that count
// firmware and fsck treat the file system as FAT16.
func sectorsPerCluster(size int64) int {
	spc := 8
	for spc > 1 && size/int64(spc*sectorSize) < 66000 {
		spc /= 2
	}
	return spc
}

// grubConfig is the GRUB configuration on the ESP. It boots the kernel of
// the root file system directly rather than chaining to a
// /boot/grub/grub.cfg: the image is immutable, so nothing runs update-grub,
// and one small config on the ESP is easy to read and test.
func grubConfig(d *Disk) string {
	return fmt.Sprintf(`# Boots the appliance root file system, found by its UUID so the disk can
# sit on any controller.
set timeout=1
set default=0
search --no-floppy --fs-uuid --set=root %[1]s
menuentry 'Debian appliance' {
	linux %[2]s %[3]s
	initrd %[4]s
}
`, d.RootUUID, d.Kernel, d.Cmdline, d.Initrd)
}

// RootFstab is the /etc/fstab line for the root file system of a disk
// assembled with rootUUID. The GRUB entry mounts the root read-write
// already; the line lets e2fsck check it at boot and names it for tools
// such as cloud-init's resizefs.
func RootFstab(rootUUID string) string {
	return "UUID=" + strings.ToLower(rootUUID) + " / ext4 defaults,errors=remount-ro 0 1\n"
}

func randomUUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return formatUUIDv4(b), nil
}

// derivedUUID makes a stable UUID from a parent UUID and a role name.
func derivedUUID(parent, role string) string {
	h := sha256.Sum256([]byte(strings.ToLower(parent) + "/" + role))
	return formatUUIDv4(h[:16])
}

func formatUUIDv4(b []byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
