package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// Format is a disk image format a hypervisor imports.
type Format string

const (
	// FormatQCOW2 is for Proxmox VE and other QEMU-based hypervisors;
	// written compressed.
	FormatQCOW2 Format = "qcow2"
	// FormatVHDX is for Hyper-V Gen2; written as a dynamic (sparse) VHDX.
	FormatVHDX Format = "vhdx"
)

// Formats lists the formats Convert writes.
var Formats = []Format{FormatQCOW2, FormatVHDX}

// ParseFormat checks a format name given by a user.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("image format %q is not supported: want one of qcow2, vhdx", s)
}

// Convert writes the raw disk image raw to out in format. Like Assemble it
// writes a temporary sibling and renames it, so out is either complete or
// absent.
func Convert(ctx context.Context, raw string, format Format, out string) error {
	if _, err := os.Stat(raw); err != nil {
		return fmt.Errorf("convert: raw image %s: %w", raw, err)
	}
	var opts []string
	switch format {
	case FormatQCOW2:
		// Compressed clusters make the template a fraction of its
		// virtual size; the guest's own writes are not compressed.
		opts = []string{"-c", "-O", "qcow2"}
	case FormatVHDX:
		// Hyper-V accepts dynamic VHDX for Gen2 templates and it stays
		// about as small as the data in it.
		opts = []string{"-O", "vhdx", "-o", "subformat=dynamic"}
	default:
		return fmt.Errorf("convert: image format %q is not supported: want one of qcow2, vhdx", format)
	}
	tmp, err := tempSibling(out)
	if err != nil {
		return err
	}
	args := append([]string{"convert", "-q", "-f", "raw"}, opts...)
	args = append(args, raw, tmp)
	if _, err := qemuImg(ctx, args...); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("convert %s to %s: %w", raw, format, err)
	}
	if err := commit(tmp, out); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Checksum identifies an image file for a manifest.
type Checksum struct {
	// SHA256 is the hex digest of the file's bytes.
	SHA256 string
	// Size is the file's length in bytes (for a sparse raw image, its
	// apparent size).
	Size int64
}

// Sum reads the file at path and returns its SHA-256 and size.
func Sum(path string) (Checksum, error) {
	f, err := os.Open(path)
	if err != nil {
		return Checksum{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Checksum{}, fmt.Errorf("checksum %s: %w", path, err)
	}
	return Checksum{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
