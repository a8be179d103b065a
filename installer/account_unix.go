//go:build !windows

package installer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// account is a resolved service user.
type account struct {
	name  string
	group string // primary group's name
	uid   int
	gid   int
	gids  map[int]bool // primary and supplementary groups
}

func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %s has a non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %s has a non-numeric gid %q", name, u.Gid)
	}
	a := &account{name: name, group: u.Gid, uid: uid, gid: gid, gids: map[int]bool{gid: true}}
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		a.group = g.Name
	}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil {
				a.gids[g] = true
			}
		}
	}
	return a, nil
}

// userExists reports whether a local account of that name exists.
func userExists(name string) bool {
	_, err := user.Lookup(name)
	return err == nil
}

// may reports whether the account has the permission bits want (4 read, 2 write,
// 1 search/execute) on fi, the way the kernel decides it for a non-root process.
func (a *account) may(fi fs.FileInfo, want fs.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	mode := fi.Mode().Perm()
	switch {
	case int(st.Uid) == a.uid:
		return (mode>>6)&want == want
	case a.gids[int(st.Gid)]:
		return (mode>>3)&want == want
	default:
		return mode&want == want
	}
}

// checkReadable makes sure the service user can reach and read path: every parent
// directory searchable, the file readable. A service that cannot read its config
// crash-loops; saying so at install time is kinder.
func (a *account) checkReadable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := a.checkSearchable(filepath.Dir(path)); err != nil {
		return err
	}
	if !a.may(fi, 4) {
		return fmt.Errorf("user %s cannot read %s (owner, group or mode): run `chgrp %s %s && chmod 0640 %s`, or install with --user root",
			a.name, path, a.group, path, path)
	}
	return nil
}

func (a *account) checkSearchable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !a.may(fi, 1) {
			return fmt.Errorf("user %s cannot enter directory %s: give it o+x (or g+x with group %s), or install with --user root", a.name, d, a.group)
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

// prepareDataDir creates dataDir (and any missing parents) with mode 0700 and hands
// what it created, and dataDir itself, to the service user. A data directory left
// owned by root (say, after `agent run` was tried by hand) would keep the service from
// opening its database, so its contents are handed over too.
func prepareDataDir(dataDir string, a *account) error {
	var created []string
	for d := filepath.Clean(dataDir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		created = append(created, d)
		if parent := filepath.Dir(d); parent == d {
			break
		}
	}
	if a != nil {
		// Refuse before creating anything: the deepest directory that exists already
		// must let the service user through.
		existing := filepath.Dir(filepath.Clean(dataDir))
		if len(created) > 0 {
			existing = filepath.Dir(created[len(created)-1])
		}
		if err := a.checkSearchable(existing); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data_dir %s: %w", dataDir, err)
	}
	if a == nil {
		return nil
	}
	for _, d := range created {
		if err := os.Lchown(d, a.uid, a.gid); err != nil {
			return fmt.Errorf("hand %s to user %s: %w", d, a.name, err)
		}
	}
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == a.uid {
			return nil
		}
		return os.Lchown(p, a.uid, a.gid)
	})
	if err != nil {
		return fmt.Errorf("hand data_dir %s to user %s: %w", dataDir, a.name, err)
	}
	return nil
}
