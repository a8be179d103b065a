//go:build windows

package store

// syncDir is a no-op on Windows: NTFS journals directory entries itself and a directory
// cannot be opened for fsync.
func syncDir(string) error { return nil }
