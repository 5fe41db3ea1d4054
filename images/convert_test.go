package images

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/verify/testenv"
)

type imgInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

func info(t *testing.T, path string) imgInfo {
	t.Helper()
	var i imgInfo
	if err := json.Unmarshal([]byte(run(t, "qemu-img", "info", "--output=json", path)), &i); err != nil {
		t.Fatal(err)
	}
	return i
}

// TestConvertWritesImportableFormats converts an assembled disk and checks
// with qemu-img that each result has the right format and virtual size and
// holds exactly the raw disk's contents.
func TestConvertWritesImportableFormats(t *testing.T) {
	requireDiskTools(t)
	testenv.RequireTool(t, "qemu-img")
	tree, _ := makeTree(t)
	d, raw := assembleTest(t, tree, 512*MiB)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "disk."+string(f))
			if err := Convert(ctx, raw, f, out); err != nil {
				t.Fatal(err)
			}
			i := info(t, out)
			if i.Format != string(f) || i.VirtualSize != d.Layout.DiskSize {
				t.Errorf("qemu-img sees %s of %d bytes, want %s of %d", i.Format, i.VirtualSize, f, d.Layout.DiskSize)
			}
			// A fixed VHDX or an uncompressed, preallocated qcow2 would
			// be about the virtual size; these hold a few MiB of data.
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() > d.Layout.DiskSize/4 {
				t.Errorf("%s file is %d bytes for a %d-byte disk: not dynamic/compressed", f, fi.Size(), d.Layout.DiskSize)
			}
			cmp := exec.Command("qemu-img", "compare", "-f", "raw", "-F", string(f), raw, out)
			if b, err := cmp.CombinedOutput(); err != nil {
				t.Errorf("qemu-img compare raw %s: %v\n%s", f, err, b)
			}
			entries, _ := os.ReadDir(filepath.Dir(out))
			if len(entries) != 1 {
				t.Errorf("conversion left %d files beside the output, want just it", len(entries))
			}
		})
	}
}

// TestConvertQCOW2IsCompressed checks the qcow2 has compressed clusters by
// converting random-free, highly compressible data: compressed it is much
// smaller than the same data uncompressed.
func TestConvertQCOW2IsCompressed(t *testing.T) {
	testenv.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "text.raw")
	data := []byte(strings.Repeat("appliance image data, highly compressible\n", 200000))
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "text.qcow2")
	if err := Convert(context.Background(), raw, FormatQCOW2, out); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.qcow2")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, plain)
	c, _ := os.Stat(out)
	p, _ := os.Stat(plain)
	if c.Size()*4 > p.Size() {
		t.Errorf("Convert's qcow2 is %d bytes, uncompressed is %d: want compressed clusters", c.Size(), p.Size())
	}
}

func TestConvertRejectsUnknownFormatAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Convert(context.Background(), raw, Format("vmdk"), filepath.Join(dir, "disk.vmdk"))
	if err == nil || !strings.Contains(err.Error(), "qcow2, vhdx") {
		t.Fatalf("got %v, want an error listing the supported formats", err)
	}
	if _, err := ParseFormat("VHDX"); err != nil {
		t.Errorf("ParseFormat(VHDX): %v", err)
	}
	if _, err := ParseFormat("vmdk"); err == nil {
		t.Error("ParseFormat(vmdk) accepted an unsupported format")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the directory, want only the raw image", len(entries))
	}
}

func TestConvertCancelledLeavesNoOutput(t *testing.T) {
	testenv.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Convert(ctx, raw, FormatVHDX, filepath.Join(dir, "disk.vhdx")); err == nil {
		t.Fatal("Convert with a cancelled context succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the directory, want only the raw image", len(entries))
	}
}

func TestSumMatchesSHA256TestVector(t *testing.T) {
	p := filepath.Join(t.TempDir(), "abc")
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Sum(p)
	if err != nil {
		t.Fatal(err)
	}
	// FIPS 180-2, appendix B.1.
	if c.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || c.Size != 3 {
		t.Errorf("Sum(abc) = %+v", c)
	}
	if _, err := Sum(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Sum of a missing file succeeded")
	}
}
