package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// This file holds what the partition matrix and the disk and clock faults need beyond
// the cluster: a till whose binary is wrapped (to hand one daemon an environment
// variable the harness otherwise strips), a till whose data directory is a filesystem
// the test mounted before the agent first starts, filesystems that fill up or turn
// read-only under a running agent, and the platform's clock record of a redemption.
// Mounting needs root on Linux; callers skip when they cannot mount.

// EnvBinary writes an executable script into dir that runs bin with the given
// "NAME=value" variables added to its environment, and returns its path. The harness
// starts daemons without any TILLKEEP_* variable (see childEnv), so this is how one till
// of a scenario gets, say, TILLKEEP_TEST_CLOCK_OFFSET while the others do not. The
// script execs the binary: the daemon keeps the script's pid, so signals and the
// parent-death signal reach it.
func EnvBinary(dir, bin string, env ...string) (string, error) {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# written by the end-to-end harness (internal/e2e)\n")
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.IndexFunc(name, func(r rune) bool {
			return !(r == '_' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9')
		}) >= 0 {
			return "", fmt.Errorf("wrap %s: %q is not NAME=value", bin, kv)
		}
		fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(value))
	}
	fmt.Fprintf(&b, "exec %s \"$@\"\n", shellQuote(bin))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("wrap %s: %w", bin, err)
	}
	path := filepath.Join(dir, "tillkeep-env.sh")
	if err := os.WriteFile(path, []byte(b.String()), 0o700); err != nil {
		return "", fmt.Errorf("wrap %s: %w", bin, err)
	}
	return path, nil
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is special but
// the single quote itself.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// AddTillWith prepares till opts under the cluster as AddTill does, but runs bin (a
// wrapper from EnvBinary, or the cluster's own binary) and calls prepare before the
// first start, when the till's directory exists and its data directory does not yet:
// prepare may mount a filesystem on a.DataDir. The till belongs to the cluster from the
// moment it is prepared, so Close and StopAll reach it even if prepare fails.
func (c *Cluster) AddTillWith(ctx context.Context, bin string, opts AgentOptions, prepare func(a *Agent) error) (*Agent, error) {
	a, err := NewAgent(bin, filepath.Join(c.Dir, opts.StoreID+"-"+opts.TillID), c.Platform, opts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tills = append(c.tills, a)
	c.mu.Unlock()
	if prepare != nil {
		if err := prepare(a); err != nil {
			return a, fmt.Errorf("prepare till %s: %w", a.Name(), err)
		}
	}
	if err := a.Start(ctx); err != nil {
		return a, err
	}
	return a, nil
}

// Healthz asks the agent's /healthz once and returns an error unless it answers 200.
func (a *Agent) Healthz(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Addr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET /healthz of till %s: %w", a.Name(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz of till %s: HTTP %d, want 200", a.Name(), resp.StatusCode)
	}
	return nil
}

// runTool runs a system command (mount, mkfs.ext4...) and returns its output in the
// error when it fails.
func runTool(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// MountTmpfs mounts a tmpfs of size bytes, mode 0700, on dir (created if needed): a
// small disk that a test can fill.
func MountTmpfs(ctx context.Context, dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount a tmpfs on %s: %w", dir, err)
	}
	return runTool(ctx, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir)
}

// Remount changes the options of the filesystem mounted on dir ("ro", "rw"). Linux
// refuses to make a filesystem read-only while a file on it is open for writing
// (EBUSY): a running agent's ledger is, so remount it read-only only while the agent is
// stopped.
func Remount(ctx context.Context, dir, opt string) error {
	return runTool(ctx, "mount", "-o", "remount,"+opt, dir)
}

// Unmount unmounts dir. A daemon that has just exited may still hold it for a moment,
// so a busy mount is retried for a few seconds; as a last resort it is detached lazily,
// so that a failing test never leaves a mount behind.
func Unmount(dir string) error {
	ctx := context.Background()
	var err error
	for range 20 {
		if err = runTool(ctx, "umount", dir); err == nil {
			return nil
		}
		if mounted, merr := IsMountPoint(dir); merr == nil && !mounted {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	if lerr := runTool(ctx, "umount", "-l", dir); lerr != nil {
		return errors.Join(err, lerr)
	}
	return fmt.Errorf("%w (detached it lazily instead)", err)
}

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	Dir     string
	FSType  string
	Source  string
	Options []string // per-mount and superblock options together
}

// ReadOnly reports whether the filesystem is mounted read-only, or was made read-only
// by an error (ext4 shows "emergency_ro" then, on recent kernels, and keeps "rw").
func (m MountInfo) ReadOnly() bool {
	return slices.Contains(m.Options, "ro") || slices.Contains(m.Options, "emergency_ro")
}

// MountOf returns the mount whose mount point is dir (the last one, if several are
// stacked).
func MountOf(dir string) (MountInfo, bool, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return MountInfo{}, false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountInfo{}, false, fmt.Errorf("read the mount table: %w", err)
	}
	defer f.Close()
	var found MountInfo
	ok := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, cut := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !cut || len(fields) < 6 || len(tail) < 3 || unescapeMount(fields[4]) != dir {
			continue
		}
		found = MountInfo{Dir: dir, FSType: tail[0], Source: tail[1],
			Options: append(strings.Split(fields[5], ","), strings.Split(tail[2], ",")...)}
		ok = true
	}
	if err := sc.Err(); err != nil {
		return MountInfo{}, false, fmt.Errorf("read the mount table: %w", err)
	}
	return found, ok, nil
}

// IsMountPoint reports whether something is mounted on dir.
func IsMountPoint(dir string) (bool, error) {
	_, ok, err := MountOf(dir)
	return ok, err
}

// unescapeMount undoes the octal escapes (\040 for a space...) of the mount table.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FillFilesystem writes a ballast file at path until its filesystem has no space left
// (ENOSPC), down to the last page, and returns how many bytes it holds. Removing the
// file gives the space back.
func FillFilesystem(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create ballast %s: %w", path, err)
	}
	var total int64
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		buf := make([]byte, chunk)
		for {
			n, err := f.Write(buf)
			total += int64(n)
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				f.Close()
				return total, fmt.Errorf("fill %s: %w", path, err)
			}
			break
		}
	}
	// Sync may itself report ENOSPC for data it could not place; the file holds what
	// the filesystem accepted either way.
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		f.Close()
		return total, fmt.Errorf("sync ballast %s: %w", path, err)
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		return total, fmt.Errorf("close ballast %s: %w", path, err)
	}
	return total, nil
}

// Ext4Disk is an ext4 filesystem in an image file, mounted through a loop device with
// errors=remount-ro, the usual setting for a till's disk: when the kernel meets a
// filesystem error it turns the filesystem read-only at once, under the processes that
// have files open for writing. That is the read-only data directory a running agent
// can meet; a tmpfs cannot be made read-only while the agent holds its ledger open.
type Ext4Disk struct {
	Image string
	Dir   string
}

// NewExt4Disk creates an image of size bytes at image, makes an ext4 filesystem in it
// and mounts it on dir (created if needed, then restricted to 0700).
func NewExt4Disk(ctx context.Context, image, dir string, size int64) (*Ext4Disk, error) {
	f, err := os.OpenFile(image, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create disk image %s: %w", image, err)
	}
	terr := f.Truncate(size)
	if cerr := f.Close(); terr == nil {
		terr = cerr
	}
	if terr != nil {
		return nil, fmt.Errorf("size disk image %s: %w", image, terr)
	}
	if err := runTool(ctx, "mkfs.ext4", "-q", "-F", image); err != nil {
		return nil, err
	}
	d := &Ext4Disk{Image: image, Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create mount point %s: %w", dir, err)
	}
	if err := d.Mount(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Mount mounts the image on Dir, read-write, with errors=remount-ro.
func (d *Ext4Disk) Mount(ctx context.Context) error {
	if err := runTool(ctx, "mount", "-o", "loop,errors=remount-ro", d.Image, d.Dir); err != nil {
		return err
	}
	if err := os.Chmod(d.Dir, 0o700); err != nil {
		return fmt.Errorf("restrict %s: %w", d.Dir, err)
	}
	return nil
}

// Unmount unmounts it (see Unmount), which also releases the loop device.
func (d *Ext4Disk) Unmount() error { return Unmount(d.Dir) }

// Repair runs e2fsck on the unmounted image, as an operator does after a filesystem
// error: it replays the journal, so everything that was fsynced before the error is
// there. Exit status 1 means it corrected something, which is expected after an error.
func (d *Ext4Disk) Repair(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "e2fsck", "-f", "-y", d.Image)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 1 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("e2fsck -f -y %s: %w: %s", d.Image, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// FailReadOnly makes the kernel record a filesystem error on the disk through ext4's
// own test hook (/sys/fs/ext4/DEV/trigger_fs_error): with errors=remount-ro the
// filesystem turns read-only on the spot, and every later write, even through files
// already open, fails with EROFS. It returns once the mount reads read-only.
func (d *Ext4Disk) FailReadOnly(ctx context.Context) error {
	m, ok, err := MountOf(d.Dir)
	if err != nil {
		return err
	}
	if !ok || m.FSType != "ext4" {
		return fmt.Errorf("fail %s: no ext4 filesystem is mounted there", d.Dir)
	}
	hook := filepath.Join("/sys/fs/ext4", filepath.Base(m.Source), "trigger_fs_error")
	if err := os.WriteFile(hook, []byte("tillkeep e2e: a failing disk\n"), 0o200); err != nil {
		return fmt.Errorf("fail %s: %w", d.Dir, err)
	}
	return WaitFor(ctx, 10*time.Second, d.Dir+" to turn read-only", func(context.Context) (bool, string, error) {
		m, ok, err := MountOf(d.Dir)
		if err != nil || !ok {
			return false, "", err
		}
		return m.ReadOnly(), strings.Join(m.Options, ","), nil
	})
}

// RedemptionRecord is a redemption as GET /v1/redemptions lists it, with the platform's
// record of the clocks: the till's wall time, the time the platform judged it at, its
// receipt, the hybrid logical clock stamp, the till clock's skew and the flags.
type RedemptionRecord struct {
	ID         string    `json:"id"`
	Code       string    `json:"code"`
	StoreID    string    `json:"store_id"`
	TillID     string    `json:"till_id"`
	Mode       string    `json:"mode"`
	Status     string    `json:"status"`
	At         time.Time `json:"at"`
	EventAt    time.Time `json:"event_at"`
	ReceivedAt time.Time `json:"received_at"`
	HLC        struct {
		WallMS  int64  `json:"wall_ms"`
		Logical uint32 `json:"logical"`
	} `json:"hlc"`
	SkewMS       int64    `json:"skew_ms"`
	Flags        []string `json:"flags"`
	ConflictID   string   `json:"conflict_id"`
	ConflictKind string   `json:"conflict_kind"`
}

// RedemptionRecords lists every redemption of a till with its clock record, following
// the cursor to the end.
func (c *OpsClient) RedemptionRecords(ctx context.Context, storeID, tillID string) ([]RedemptionRecord, error) {
	q := url.Values{"store_id": {storeID}, "till_id": {tillID}, "limit": {"1000"}}
	var all []RedemptionRecord
	for page := 0; page <= 10000; page++ {
		var out struct {
			Redemptions []RedemptionRecord `json:"redemptions"`
			NextCursor  string             `json:"next_cursor"`
		}
		if _, err := doJSON(ctx, c.http, http.MethodGet, c.base+"/v1/redemptions?"+q.Encode(), c.token, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Redemptions...)
		if out.NextCursor == "" {
			return all, nil
		}
		q.Set("cursor", out.NextCursor)
	}
	return nil, errors.New("GET /v1/redemptions: the cursor never ends")
}
