package images

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/testenv"
)

// treeFile is one entry of a test tree.
type treeFile struct {
	path     string
	mode     os.FileMode
	uid, gid int
	data     []byte
	link     string // symlink target when set
}

// fakeEFI returns bytes that stand in for a signed EFI binary; the test
// only checks they arrive on the ESP unchanged.
func fakeEFI(t *testing.T, name string) []byte {
	b := make([]byte, 200*1024)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	copy(b, "MZ fake "+name)
	return b
}

// makeTree writes a small root tree like a Debian one: kernel and initrd
// behind /vmlinuz and /initrd.img symlinks, fake signed EFI binaries where
// shim-signed and grub-efi-amd64-signed put them (shim behind an absolute
// symlink, as alternatives make them), and files with various owners and
// modes.
func makeTree(t *testing.T) (string, map[string]treeFile) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	files := []treeFile{
		{path: "boot/vmlinuz-6.12.0-test-amd64", mode: 0o644, data: []byte("fake kernel\n")},
		{path: "boot/initrd.img-6.12.0-test-amd64", mode: 0o644, data: []byte("fake initrd\n")},
		{path: "vmlinuz", link: "boot/vmlinuz-6.12.0-test-amd64"},
		{path: "initrd.img", link: "boot/initrd.img-6.12.0-test-amd64"},
		{path: "usr/lib/shim/shimx64.efi.signed.latest", mode: 0o644, data: fakeEFI(t, "shim")},
		{path: "usr/lib/shim/shimx64.efi.signed", link: "/usr/lib/shim/shimx64.efi.signed.latest"},
		{path: "usr/lib/shim/mmx64.efi.signed", mode: 0o644, data: fakeEFI(t, "mokmanager")},
		{path: "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", mode: 0o644, data: fakeEFI(t, "grub")},
		{path: "etc/shadow", mode: 0o640, gid: 42, data: []byte("root:*:20000:0:99999:7:::\n")},
		{path: "home/app/notes", mode: 0o600, uid: 1000, gid: 1000, data: []byte("owned by uid 1000\n")},
		{path: "usr/bin/su", mode: os.ModeSetuid | 0o755, data: []byte("#!/bin/sh\n")},
		{path: "etc/alternatives/editor", link: "/usr/bin/su"},
		{path: "etc/os-release", mode: 0o644, data: []byte("PRETTY_NAME=\"test\"\n")},
	}
	byPath := map[string]treeFile{}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.link != "" {
			if err := os.Symlink(f.link, p); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.WriteFile(p, f.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, f.uid, f.gid); err != nil {
				t.Fatal(err)
			}
			// After chown, which clears the setuid bit.
			if err := os.Chmod(p, f.mode); err != nil {
				t.Fatal(err)
			}
		}
		byPath[f.path] = f
	}
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(root, "home/app"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, byPath
}

func requireDiskTools(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t) // the test tree has files owned by other users
	for _, p := range []string{"mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "sgdisk"} {
		testenv.RequireTool(t, p)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// extract copies one partition out of a disk image, as dd would.
func extract(t *testing.T, img string, p Partition) string {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := filepath.Join(t.TempDir(), "part.img")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, io.NewSectionReader(in, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	testRootUUID = "0b6f0a84-6d0c-4b43-9d2a-8d3c8f1c2a11"
	testDiskGUID = "7d1f3c2e-58a4-4f0b-9c61-2e9a4b7d8f10"
	testVolID    = "1a2b3c4d"
)

func assembleTest(t *testing.T, tree string, size int64) (*Disk, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "disk.raw")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := Assemble(ctx, AssembleOptions{
		RootTree: tree, Out: out, Size: size,
		RootLabel: "gw-root", RootUUID: testRootUUID, DiskGUID: testDiskGUID, ESPVolumeID: testVolID,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, out
}

func TestAssembleWritesGPTWithESPAndRoot(t *testing.T) {
	requireDiskTools(t)
	testenv.RequireTool(t, "sfdisk")
	tree, _ := makeTree(t)
	d, img := assembleTest(t, tree, 256*MiB)

	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 256*MiB {
		t.Errorf("image is %d bytes, want the requested 256 MiB", fi.Size())
	}

	var table struct {
		PartitionTable struct {
			Label      string `json:"label"`
			ID         string `json:"id"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
				UUID  string `json:"uuid"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(run(t, "sfdisk", "-J", img)), &table); err != nil {
		t.Fatal(err)
	}
	pt := table.PartitionTable
	if pt.Label != "gpt" || !strings.EqualFold(pt.ID, testDiskGUID) {
		t.Fatalf("partition table %q with id %s, want gpt with disk GUID %s", pt.Label, pt.ID, testDiskGUID)
	}
	if len(pt.Partitions) != 2 {
		t.Fatalf("%d partitions, want ESP and root: %+v", len(pt.Partitions), pt.Partitions)
	}
	for i, want := range []Partition{d.Layout.ESP, d.Layout.Root} {
		got := pt.Partitions[i]
		if got.Start*512 != want.Start || got.Size*512 != want.Size {
			t.Errorf("partition %d at sector %d size %d, want byte %d size %d", i+1, got.Start, got.Size, want.Start, want.Size)
		}
		if got.Start*512%MiB != 0 {
			t.Errorf("partition %d starts at sector %d, not on a MiB boundary", i+1, got.Start)
		}
		if !strings.EqualFold(got.Type, want.TypeGUID) || got.Name != want.Name {
			t.Errorf("partition %d type %s name %q, want %s %q", i+1, got.Type, got.Name, want.TypeGUID, want.Name)
		}
	}
	if !strings.EqualFold(pt.Partitions[1].UUID, d.RootGUID) {
		t.Errorf("root partition GUID %s, Disk says %s", pt.Partitions[1].UUID, d.RootGUID)
	}
	// The root is the last partition and ends right before the backup GPT,
	// so growpart can take it to the end of a larger disk.
	if end := d.Layout.Root.End(); end > 256*MiB-33*512 || 256*MiB-end > MiB+33*512 {
		t.Errorf("root ends at byte %d of %d: want the last MiB boundary before the backup GPT", end, 256*MiB)
	}
	if testenv.RequireTool(t, "sgdisk") != "" {
		if out := run(t, "sgdisk", "-v", img); !strings.Contains(out, "No problems found") {
			t.Errorf("sgdisk -v finds problems:\n%s", out)
		}
	}
}

func TestAssembleESPHoldsSignedBootChainAndConfig(t *testing.T) {
	requireDiskTools(t)
	testenv.RequireTool(t, "mdir")
	testenv.RequireTool(t, "mtype")
	testenv.RequireTool(t, "fsck.vfat")
	tree, files := makeTree(t)
	d, img := assembleTest(t, tree, 256*MiB)
	fat := img + "@@" + itoa(d.Layout.ESP.Start)

	listing := run(t, "mdir", "-i", fat, "::/EFI/BOOT")
	for _, name := range []string{"BOOTX64  EFI", "grubx64  efi", "mmx64    efi", "grub     cfg"} {
		if !strings.Contains(listing, name) {
			t.Errorf("\\EFI\\BOOT has no %q:\n%s", name, listing)
		}
	}
	if !strings.Contains(listing, "Serial Number is 1A2B-3C4D") {
		t.Errorf("ESP volume serial is not the requested %s:\n%s", testVolID, listing)
	}
	for esp, src := range map[string]string{
		"::/EFI/BOOT/BOOTX64.EFI": "usr/lib/shim/shimx64.efi.signed.latest",
		"::/EFI/BOOT/grubx64.efi": "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
		"::/EFI/BOOT/mmx64.efi":   "usr/lib/shim/mmx64.efi.signed",
	} {
		if got := run(t, "mtype", "-i", fat, esp); got != string(files[src].data) {
			t.Errorf("%s on the ESP (%d bytes) is not the tree's %s (%d bytes)", esp, len(got), src, len(files[src].data))
		}
	}
	for _, cfg := range []string{"::/EFI/debian/grub.cfg", "::/EFI/BOOT/grub.cfg"} {
		got := run(t, "mtype", "-i", fat, cfg)
		for _, want := range []string{
			"search --no-floppy --fs-uuid --set=root " + testRootUUID,
			"linux /vmlinuz root=UUID=" + testRootUUID + " rw console=tty0 console=ttyS0,115200",
			"initrd /initrd.img",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q:\n%s", cfg, want, got)
			}
		}
	}
	esp := extract(t, img, d.Layout.ESP)
	out := run(t, "fsck.vfat", "-n", esp)
	m := regexp.MustCompile(`\d+ files, \d+/(\d+) clusters`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("fsck.vfat -n did not report the clusters:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); n < 65525 {
		t.Errorf("ESP has %d clusters, fewer than FAT32's minimum of 65525, so firmware may read it as FAT16", n)
	}
}

func TestAssembleRootKeepsOwnersModesAndLinks(t *testing.T) {
	requireDiskTools(t)
	testenv.RequireTool(t, "debugfs")
	testenv.RequireTool(t, "dumpe2fs")
	testenv.RequireTool(t, "e2fsck")
	tree, files := makeTree(t)
	d, img := assembleTest(t, tree, 256*MiB)
	part := extract(t, img, d.Layout.Root)

	run(t, "e2fsck", "-fn", part)
	head := run(t, "dumpe2fs", "-h", part)
	for _, want := range []string{
		"Filesystem volume name:   gw-root",
		"Filesystem UUID:          " + testRootUUID,
		"Block size:               4096",
	} {
		if !strings.Contains(head, want) {
			t.Errorf("dumpe2fs -h lacks %q", want)
		}
	}
	stat := func(p string) string { return run(t, "debugfs", "-R", "stat /"+p, part) }
	for _, p := range []string{"etc/shadow", "home/app/notes", "usr/bin/su"} {
		f := files[p]
		out := stat(p)
		wantMode := "Mode:  " + octal(f.mode)
		if !strings.Contains(out, wantMode) {
			t.Errorf("/%s: want %s in\n%s", p, wantMode, out)
		}
		if want := regexp.MustCompile(`User: +` + itoa(int64(f.uid)) + ` +Group: +` + itoa(int64(f.gid)) + `\b`); !want.MatchString(out) {
			t.Errorf("/%s: want owner %d:%d in\n%s", p, f.uid, f.gid, out)
		}
		if got := run(t, "debugfs", "-R", "cat /"+p, part); got != string(f.data) {
			t.Errorf("/%s holds %q, want %q", p, got, f.data)
		}
	}
	if out := stat("tmp"); !strings.Contains(out, "Mode:  01777") {
		t.Errorf("/tmp lost its sticky bit:\n%s", out)
	}
	if out := stat(""); !strings.Contains(out, "Mode:  0755") || !regexp.MustCompile(`User: +0 +Group: +0\b`).MatchString(out) {
		t.Errorf("root directory is not 0755 root:root:\n%s", out)
	}
	for _, p := range []string{"vmlinuz", "etc/alternatives/editor"} {
		out := stat(p)
		if !strings.Contains(out, "Type: symlink") || !strings.Contains(out, `Fast link dest: "`+files[p].link+`"`) {
			t.Errorf("/%s is not a symlink to %s:\n%s", p, files[p].link, out)
		}
	}
}

func TestAssembleSizesDiskFromTree(t *testing.T) {
	requireDiskTools(t)
	tree, _ := makeTree(t)
	d, img := assembleTest(t, tree, 0)
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != d.Layout.DiskSize || d.Layout.Root.Size < minRootSize {
		t.Errorf("image %d bytes, layout %+v", fi.Size(), d.Layout)
	}
	if d.Kernel != "/vmlinuz" || d.Initrd != "/initrd.img" {
		t.Errorf("boots %s %s, want Debian's /vmlinuz and /initrd.img links", d.Kernel, d.Initrd)
	}
}

func TestAssembleRejectsTreeWithoutShim(t *testing.T) {
	requireDiskTools(t)
	tree, _ := makeTree(t)
	if err := os.Remove(filepath.Join(tree, "usr/lib/shim/shimx64.efi.signed.latest")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "disk.raw")
	_, err := Assemble(context.Background(), AssembleOptions{RootTree: tree, Out: out, Size: 256 * MiB})
	if err == nil || !strings.Contains(err.Error(), "shim-signed") {
		t.Fatalf("got %v, want an error naming the shim-signed package", err)
	}
	assertNoFiles(t, filepath.Dir(out))
}

func TestAssembleRejectsDiskTooSmallForTree(t *testing.T) {
	requireDiskTools(t)
	tree, _ := makeTree(t)
	big := make([]byte, 100*MiB)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr/big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "disk.raw")
	_, err := Assemble(context.Background(), AssembleOptions{RootTree: tree, Out: out, Size: 160 * MiB})
	if err == nil || !strings.Contains(err.Error(), "too small") || !strings.Contains(err.Error(), "want at least") {
		t.Fatalf("got %v, want a too-small error saying what size would do", err)
	}
	assertNoFiles(t, filepath.Dir(out))
}

// TestAssembleCancelledLeavesNoImage stops a build while mkfs.ext4 is
// copying a tree and checks that neither the image nor a partial file is
// left behind.
func TestAssembleCancelledLeavesNoImage(t *testing.T) {
	requireDiskTools(t)
	tree, _ := makeTree(t)
	// Enough data that mkfs.ext4 is still copying when the cancel lands.
	big := make([]byte, 64*MiB)
	for i := 0; i < 4; i++ {
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, "usr", "big"+itoa(int64(i))), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "disk.raw")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sawPartial := false
	stageHook = func(stage string) {
		if stage != "root filesystem" {
			return
		}
		matches, _ := filepath.Glob(filepath.Join(dir, ".disk.raw.*.partial"))
		sawPartial = len(matches) == 1
		time.AfterFunc(150*time.Millisecond, cancel)
	}
	defer func() { stageHook = nil }()
	_, err := Assemble(ctx, AssembleOptions{RootTree: tree, Out: out})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the build to stop with context.Canceled", err)
	}
	if !sawPartial {
		t.Error("no temporary sibling existed while building; the build does not write beside the output")
	}
	assertNoFiles(t, dir)
}

func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
	}
}

func TestNewLayoutAlignsAndLeavesRoomForBackupGPT(t *testing.T) {
	l, err := NewLayout(1000*MiB+1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.DiskSize != 1001*MiB {
		t.Errorf("disk size %d, want it rounded up to 1001 MiB", l.DiskSize)
	}
	if l.ESP.Start != MiB || l.ESP.Size != DefaultESPSize || l.Root.Start != l.ESP.End() {
		t.Errorf("layout %+v: want the ESP at 1 MiB and the root right after it", l)
	}
	if l.Root.End() != 1000*MiB {
		t.Errorf("root ends at %d MiB, want 1000 MiB (the last MiB holds the backup GPT)", l.Root.End()/MiB)
	}
	if _, err := NewLayout(100*MiB, 0); err == nil || !strings.Contains(err.Error(), "want at least") {
		t.Errorf("100 MiB disk: got %v, want an error saying the minimum", err)
	}
	if _, err := NewLayout(1000*MiB, 16*MiB); err == nil || !strings.Contains(err.Error(), "at least 34 MiB") {
		t.Errorf("16 MiB ESP: got %v, want an error saying the minimum", err)
	}
}

func TestAssembleOptionsValidated(t *testing.T) {
	tree := t.TempDir()
	for name, o := range map[string]AssembleOptions{
		"label too long": {RootTree: tree, Out: "x", RootLabel: "a-label-longer-than-16"},
		"bad uuid":       {RootTree: tree, Out: "x", RootUUID: "not-a-uuid"},
		"bad volume id":  {RootTree: tree, Out: "x", ESPVolumeID: "xyz"},
		"no tree":        {RootTree: filepath.Join(tree, "missing"), Out: "x"},
		"no output":      {RootTree: tree},
	} {
		if _, err := Assemble(context.Background(), o); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("%s: got %v, want an error saying what is valid", name, err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// octal writes a mode the way debugfs does: setuid, setgid and sticky bits
// as the leading digit.
func octal(m os.FileMode) string {
	perm := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		perm |= 0o1000
	}
	return fmt.Sprintf("0%o", perm)
}
