package verify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// RawImage reads files of a raw disk image's root file system without
// mounting it: the GPT says where the root partition starts and debugfs
// reads the ext4 at that offset.
type RawImage struct {
	Path       string
	RootOffset int64
}

// OpenRaw finds the partition named "root" in a raw GPT disk image.
func OpenRaw(path string) (*RawImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr := make([]byte, 92)
	if _, err := f.ReadAt(hdr, 512); err != nil {
		return nil, err
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("%s: no GPT header at LBA 1", path)
	}
	entriesLBA := int64(binary.LittleEndian.Uint64(hdr[72:]))
	n := int(binary.LittleEndian.Uint32(hdr[80:]))
	size := int(binary.LittleEndian.Uint32(hdr[84:]))
	buf := make([]byte, n*size)
	if _, err := f.ReadAt(buf, entriesLBA*512); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		e := buf[i*size : (i+1)*size]
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		u := make([]uint16, 36)
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		name := strings.TrimRight(string(utf16.Decode(u)), "\x00")
		if name == "root" {
			return &RawImage{Path: path, RootOffset: first * 512}, nil
		}
	}
	return nil, fmt.Errorf("%s: no partition named root", path)
}

func (r *RawImage) debugfs(cmd string) ([]byte, error) {
	c := exec.Command("debugfs", "-R", cmd, fmt.Sprintf("%s?offset=%d", r.Path, r.RootOffset))
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs -R %q: %v: %s", cmd, err, stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "File not found") {
		return nil, os.ErrNotExist
	}
	return out, nil
}

// ReadFile returns a file's content.
func (r *RawImage) ReadFile(p string) ([]byte, error) { return r.debugfs("cat " + p) }

// Entry is one directory entry.
type Entry struct {
	Name string
	Mode uint32
	Size int64
}

// ReadDir lists a directory (without . and ..); os.ErrNotExist if absent.
func (r *RawImage) ReadDir(p string) ([]Entry, error) {
	out, err := r.debugfs("ls -p " + p)
	if err != nil {
		return nil, err
	}
	var es []Entry
	for _, l := range strings.Split(string(out), "\n") {
		// /inode/mode/uid/gid/name/size/
		f := strings.Split(strings.Trim(l, "/"), "/")
		if len(f) < 5 || f[4] == "." || f[4] == ".." || f[4] == "" {
			continue
		}
		var mode uint32
		var size int64
		fmt.Sscanf(f[1], "%o", &mode)
		if len(f) > 5 {
			fmt.Sscanf(f[5], "%d", &size)
		}
		es = append(es, Entry{Name: f[4], Mode: mode, Size: size})
	}
	return es, nil
}

// Dump copies a file out of the image.
func (r *RawImage) Dump(p, dest string) error {
	_, err := r.debugfs(fmt.Sprintf("dump %s %s", p, dest))
	return err
}

// Inode is what debugfs's stat says about one path.
type Inode struct {
	// Type is debugfs's word: regular, directory, symlink, ...
	Type string
	// Mode is the permission bits, with setuid, setgid and sticky.
	Mode os.FileMode
	// ModTime is the modification time, to the nanosecond the file system
	// kept.
	ModTime time.Time
	// LinkTarget is a short symbolic link's target (one kept in the inode,
	// as links to /dev/null are); empty for others.
	LinkTarget string
}

var (
	statType  = regexp.MustCompile(`Type: (\S+)`)
	statMtime = regexp.MustCompile(`(?m)^\s*mtime: 0x([0-9a-f]+)(?::([0-9a-f]+))?`)
	statLink  = regexp.MustCompile(`Fast link dest: "([^"]*)"`)
	statMode  = regexp.MustCompile(`Mode:\s+([0-7]+)`)
)

// Stat describes a path without following a final symbolic link;
// os.ErrNotExist if absent.
func (r *RawImage) Stat(p string) (Inode, error) {
	out, err := r.debugfs("stat " + p)
	if err != nil {
		return Inode{}, err
	}
	var in Inode
	if m := statType.FindSubmatch(out); m != nil {
		in.Type = string(m[1])
	}
	if m := statMode.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseUint(string(m[1]), 8, 32)
		in.Mode = os.FileMode(v & 0o777)
		if v&0o4000 != 0 {
			in.Mode |= os.ModeSetuid
		}
		if v&0o2000 != 0 {
			in.Mode |= os.ModeSetgid
		}
		if v&0o1000 != 0 {
			in.Mode |= os.ModeSticky
		}
	}
	m := statMtime.FindSubmatch(out)
	if m == nil {
		return Inode{}, fmt.Errorf("debugfs stat %s: no mtime in %q", p, out)
	}
	sec, _ := strconv.ParseUint(string(m[1]), 16, 64)
	var extra uint64
	if len(m[2]) > 0 {
		extra, _ = strconv.ParseUint(string(m[2]), 16, 64)
	}
	// ext4's extra time field: two epoch bits, then nanoseconds << 2.
	in.ModTime = time.Unix(int64(int32(uint32(sec)))+int64(extra&3)<<32, int64(extra>>2))
	if m := statLink.FindSubmatch(out); m != nil {
		in.LinkTarget = string(m[1])
	}
	return in, nil
}
