package roles

import "io/fs"

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
}
