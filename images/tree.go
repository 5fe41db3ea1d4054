package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// maxSymlinkHops bounds symlink resolution inside a tree the way the kernel
// bounds it (ELOOP after 40).
const maxSymlinkHops = 40

// resolveInTree returns the host path of name inside the tree at root,
// following symlinks as if root were "/". Debian's /vmlinuz is a relative
// symlink and some packages use absolute ones; resolving them against the
// host's "/" would find the build machine's files instead.
func resolveInTree(root, name string) (string, error) {
	rest := strings.Split(strings.Trim(path.Clean("/"+name), "/"), "/")
	var done []string
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		host := filepath.Join(append([]string{root}, append(done, c)...)...)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		hops++
		if hops > maxSymlinkHops {
			return "", fmt.Errorf("%s in %s: more than %d symlinks", name, root, maxSymlinkHops)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = nil
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(append([]string{root}, done...)...), nil
}

// regularInTree resolves name in the tree and requires a regular file.
func regularInTree(root, name string) (string, error) {
	p, err := resolveInTree(root, name)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s in %s is a %s, not a regular file", name, root, fi.Mode().Type())
	}
	return p, nil
}

// bootFiles is the kernel and initramfs GRUB loads, as paths inside the
// root file system.
type bootFiles struct {
	Kernel, Initrd string
}

// findBootFiles prefers Debian's /vmlinuz and /initrd.img symlinks, which
// linux-base keeps pointing at the newest kernel; without them it takes the
// newest /boot/vmlinuz-* that has a matching initrd.
func findBootFiles(root string) (bootFiles, error) {
	_, errK := regularInTree(root, "/vmlinuz")
	_, errI := regularInTree(root, "/initrd.img")
	if errK == nil && errI == nil {
		return bootFiles{Kernel: "/vmlinuz", Initrd: "/initrd.img"}, nil
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	sort.Sort(sort.Reverse(sort.StringSlice(kernels)))
	for _, k := range kernels {
		version := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
		initrd := "/boot/initrd.img-" + version
		if _, err := regularInTree(root, initrd); err == nil {
			return bootFiles{Kernel: "/boot/vmlinuz-" + version, Initrd: initrd}, nil
		}
	}
	return bootFiles{}, fmt.Errorf("root tree %s has no kernel with an initramfs: want /vmlinuz and /initrd.img, or /boot/vmlinuz-VERSION with /boot/initrd.img-VERSION (install a linux-image package and initramfs-tools in the tree)", root)
}

// treeUsage estimates what the tree takes on ext4 with 4 KiB blocks: every
// file rounded up to a block, hard links once, a block per directory and
// per long symlink. It also counts the inodes the tree needs.
func treeUsage(root string) (bytes int64, inodes int64, err error) {
	type key struct{ dev, ino uint64 }
	seen := map[key]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && !fi.IsDir() {
			k := key{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		inodes++
		switch {
		case fi.Mode().IsRegular():
			bytes += roundUp(fi.Size(), 4096)
		case fi.IsDir():
			bytes += 4096
		case fi.Mode()&fs.ModeSymlink != 0 && fi.Size() >= 60:
			bytes += 4096
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, fmt.Errorf("root tree %s does not exist: want a directory holding the prepared root file system", root)
	}
	return bytes, inodes, err
}
