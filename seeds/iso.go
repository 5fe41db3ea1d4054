package seeds

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kdomanski/iso9660"
)

// VolumeLabel is the label cloud-init's NoCloud datasource looks for.
const VolumeLabel = "cidata"

// Names of the files on a seed ISO, as cloud-init reads them.
const (
	MetaDataName      = "meta-data"
	UserDataName      = "user-data"
	NetworkConfigName = "network-config"
)

// Offsets in the primary volume descriptor (ECMA-119 8.4), which sits in
// sector 16. The iso9660 writer stamps the wall clock into the creation,
// modification and effective dates; they are overwritten with a fixed date
// so the same seed always gives the same bytes.
const (
	sectorSize       = 2048
	pvdOffset        = 16 * sectorSize
	pvdCreation      = 813
	pvdModification  = 830
	pvdEffective     = 864
	pvdDateLen       = 17
	fixedVolumeDate  = "2020010100000000" // YYYYMMDDHHMMSScc, then a zero UTC offset byte
	pvdTypePrimary   = 1
	pvdStandardIDOff = 1
)

// ISO renders the seed as the bytes of an ISO 9660 image labelled cidata.
func (sd *Seed) ISO() ([]byte, error) {
	w, err := iso9660.NewWriter()
	if err != nil {
		return nil, fmt.Errorf("seed ISO: %w", err)
	}
	// The writer stages files in a private (0700) temporary directory; remove
	// it at once, since the user-data holds secrets.
	defer w.Cleanup()
	for _, f := range []struct {
		name string
		data []byte
	}{{MetaDataName, sd.MetaData}, {UserDataName, sd.UserData}, {NetworkConfigName, sd.NetworkConfig}} {
		if err := w.AddFile(bytes.NewReader(f.data), f.name); err != nil {
			return nil, fmt.Errorf("seed ISO: adding %s: %w", f.name, err)
		}
	}
	var buf bytes.Buffer
	if err := w.WriteTo(&buf, VolumeLabel); err != nil {
		return nil, fmt.Errorf("seed ISO: %w", err)
	}
	img := buf.Bytes()
	if err := fixVolumeDates(img); err != nil {
		return nil, err
	}
	return img, nil
}

func fixVolumeDates(img []byte) error {
	if len(img) < pvdOffset+sectorSize || img[pvdOffset] != pvdTypePrimary || string(img[pvdOffset+pvdStandardIDOff:pvdOffset+6]) != "CD001" {
		return fmt.Errorf("seed ISO: no primary volume descriptor at sector 16")
	}
	date := append([]byte(fixedVolumeDate), 0)
	for _, off := range []int{pvdCreation, pvdModification, pvdEffective} {
		copy(img[pvdOffset+off:pvdOffset+off+pvdDateLen], date)
	}
	// The writer leaves directory record dates zero, which readers show as
	// 1900 or 2049; give every record the same fixed date instead.
	return fixRecordDates(img, pvdOffset+pvdRootRecord, 0)
}

// Directory record layout (ECMA-119 9.1).
const (
	pvdRootRecord = 156
	drLength      = 0
	drExtent      = 2  // little-endian uint32 sector
	drDataLen     = 10 // little-endian uint32 bytes
	drDate        = 18 // 7 bytes: years since 1900, month, day, h, m, s, UTC offset
	drFlags       = 25
	drFlagDir     = 2
)

var fixedRecordDate = []byte{120, 1, 1, 0, 0, 0, 0} // 2020-01-01 00:00:00 UTC

func fixRecordDates(img []byte, rec int, depth int) error {
	if depth > 8 {
		return fmt.Errorf("seed ISO: directories nested too deep")
	}
	copy(img[rec+drDate:rec+drDate+7], fixedRecordDate)
	if img[rec+drFlags]&drFlagDir == 0 {
		return nil
	}
	start := int(le32(img[rec+drExtent:])) * sectorSize
	end := start + int(le32(img[rec+drDataLen:]))
	if start <= 0 || end > len(img) {
		return fmt.Errorf("seed ISO: directory extent out of range")
	}
	for off := start; off < end; {
		n := int(img[off+drLength])
		if n == 0 { // records do not cross sectors; skip to the next one
			off = (off/sectorSize + 1) * sectorSize
			continue
		}
		nameLen := int(img[off+32])
		isSelfOrParent := nameLen == 1 && (img[off+33] == 0 || img[off+33] == 1)
		if isSelfOrParent || img[off+drFlags]&drFlagDir == 0 {
			copy(img[off+drDate:off+drDate+7], fixedRecordDate)
		} else if err := fixRecordDates(img, off, depth+1); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// WriteISO writes the seed ISO to path atomically with mode 0600, creating
// its directory with mode 0700. It returns the bytes written.
func (sd *Seed) WriteISO(path string) ([]byte, error) {
	img, err := sd.ISO()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return img, WriteFileAtomic(path, img, 0o600)
}

// WriteFileAtomic writes data to a temporary sibling of path, syncs it and
// renames it over path, so a reader or a crash sees the old file or the new
// one, never a part.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
