package images

import (
	"fmt"
)

const (
	// MiB is one mebibyte; every partition boundary is a multiple of it so
	// the partitions are aligned for any storage a hypervisor puts below.
	MiB = int64(1) << 20

	sectorSize = 512
	// gptSectors is what a GPT needs at each end of the disk: the header
	// plus 128 entries of 128 bytes (the backup has no protective MBR, the
	// primary has one more sector, which the first MiB absorbs).
	gptSectors = 33

	// DefaultESPSize holds shim, GRUB and MokManager (about 5 MiB) with
	// room to spare and is large enough for a FAT32 with 512-byte sectors.
	DefaultESPSize = 64 * MiB
	// minESPSize is the smallest FAT32 that has the 65525 clusters FAT32
	// requires with one-sector clusters.
	minESPSize = 34 * MiB
	// minRootSize keeps the ext4 from being made with the "small" profile
	// (1 KiB blocks), which nobody wants for a root file system.
	minRootSize = 64 * MiB
)

// GPT partition type GUIDs, from the UEFI specification and the
// Discoverable Partitions Specification.
const (
	// ESPType is the EFI System Partition type.
	ESPType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	// RootX86_64Type marks an x86-64 root file system, so tools that
	// discover partitions by type (systemd-gpt-auto, repart) find it.
	RootX86_64Type = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// Partition is one GPT entry of a Layout. Start and Size are in bytes.
type Partition struct {
	Number   int
	Name     string
	TypeGUID string
	Start    int64
	Size     int64
}

// End is the first byte after the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Layout is the partitioning of an appliance disk: an ESP first, the root
// file system last so it can grow into a larger virtual disk at first boot.
type Layout struct {
	DiskSize int64
	ESP      Partition
	Root     Partition
}

// NewLayout plans a disk of diskSize bytes with an ESP of espSize bytes
// (DefaultESPSize when 0). diskSize is rounded up to a whole MiB.
func NewLayout(diskSize, espSize int64) (Layout, error) {
	if espSize == 0 {
		espSize = DefaultESPSize
	}
	if espSize < minESPSize || espSize%MiB != 0 {
		return Layout{}, fmt.Errorf("ESP size %d bytes is not valid: want a whole number of MiB, at least %d MiB", espSize, minESPSize/MiB)
	}
	if diskSize <= 0 {
		return Layout{}, fmt.Errorf("disk size %d bytes is not valid: want a positive size", diskSize)
	}
	diskSize = roundUp(diskSize, MiB)
	espStart := MiB
	rootStart := espStart + espSize
	// The backup GPT takes the last 33 sectors; the root ends at the last
	// MiB boundary before it.
	rootEnd := (diskSize - gptSectors*sectorSize) / MiB * MiB
	if rootEnd-rootStart < minRootSize {
		return Layout{}, fmt.Errorf("disk size %d MiB is too small: the ESP needs %d MiB and the root file system at least %d MiB, so want at least %d MiB",
			diskSize/MiB, espSize/MiB, minRootSize/MiB, (rootStart+minRootSize)/MiB+1)
	}
	return Layout{
		DiskSize: diskSize,
		ESP:      Partition{Number: 1, Name: "ESP", TypeGUID: ESPType, Start: espStart, Size: espSize},
		Root:     Partition{Number: 2, Name: "root", TypeGUID: RootX86_64Type, Start: rootStart, Size: rootEnd - rootStart},
	}, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
