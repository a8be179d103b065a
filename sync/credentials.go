package sync

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// CredentialsFile is the name of the till's credentials file inside its data dir.
const CredentialsFile = "credentials.json"

// Credentials are what enrollment gave this till. The token is a secret: the file is
// 0600 and the token is never logged.
type Credentials struct {
	PlatformURL string    `json:"platform_url"`
	StoreID     string    `json:"store_id"`
	TillID      string    `json:"till_id"`
	Token       string    `json:"token"`
	Epoch       string    `json:"epoch"`
	EnrolledAt  time.Time `json:"enrolled_at"`
}

// ErrNotEnrolled is returned by LoadCredentials when the till has none yet.
var ErrNotEnrolled = errors.New("till is not enrolled")

// LoadCredentials reads the credentials in dataDir.
func LoadCredentials(dataDir string) (Credentials, error) {
	path := filepath.Join(dataDir, CredentialsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Credentials{}, ErrNotEnrolled
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("read till credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("read till credentials %s: %w", path, err)
	}
	if c.Token == "" || c.StoreID == "" || c.TillID == "" {
		return Credentials{}, fmt.Errorf("till credentials %s are incomplete", path)
	}
	return c, nil
}

// SaveCredentials writes c durably and atomically (temp file, fsync, rename, fsync of
// the directory), readable by the owner only.
func SaveCredentials(dataDir string, c Credentials) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, CredentialsFile)
	tmp, err := os.CreateTemp(dataDir, ".credentials-*")
	if err != nil {
		return fmt.Errorf("write till credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write till credentials: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write till credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write till credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write till credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write till credentials: %w", err)
	}
	if d, err := os.Open(dataDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
