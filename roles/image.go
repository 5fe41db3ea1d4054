package roles

import (
	"embed"
	"io/fs"
)

// Image is what a role adds to its root file system after the packages.
type Image struct {
	// Files is a tree copied over the root file system (modes: directories
	// 0755, files 0644, executables as named in Executables).
	Files fs.FS
	// Extra files with explicit content and mode.
	Extra []File
	// Symlinks maps link path to target.
	Symlinks map[string]string
	// Enable and Disable are systemd units.
	Enable, Disable []string
	// Mask lists systemd units the appliance never needs; masking them
	// (a link to /dev/null) keeps them out of every boot.
	Mask []string
}

//go:embed all:base
var baseFiles embed.FS

// BaseImage is what every appliance gets before its role's own image: SSH by
// keys only, cloud-init limited to the seed and to the modules the seed
// uses, and the units no appliance needs masked.
func BaseImage() Image {
	tree, _ := fs.Sub(baseFiles, "base")
	return Image{
		Files: tree,
		// Nothing on an appliance runs foreign binaries through
		// binfmt_misc, and nothing uses e2scrub's LVM snapshots; each of
		// these costs seconds of every boot under emulation.
		Mask: []string{
			"systemd-binfmt.service",
			"proc-sys-fs-binfmt_misc.automount",
			"proc-sys-fs-binfmt_misc.mount",
			"e2scrub_reap.service",
		},
	}
}
