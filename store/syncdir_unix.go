//go:build !windows

package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// syncDir fsyncs the directory holding path, so that a new or renamed file survives a
// power cut along with its contents.
func syncDir(path string) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
