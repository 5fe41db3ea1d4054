package images

import (
	"fmt"
	"os"
	"path/filepath"
)

// tempSibling creates an empty file next to final, so the closing rename
// stays on one file system and is atomic. The name starts with a dot and
// ends in .partial so a half-written image is never mistaken for a result.
func tempSibling(final string) (string, error) {
	dir, base := filepath.Split(final)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.partial")
	if err != nil {
		return "", fmt.Errorf("create temporary file beside %s: %w", final, err)
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// commit makes tmp durable and renames it to final, then makes the rename
// durable by syncing the directory.
func commit(tmp, final string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, final, err)
	}
	d, err := os.Open(filepath.Dir(final))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", final, err)
	}
	return nil
}
