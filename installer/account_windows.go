//go:build windows

package installer

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// account is the service user; on Windows services run as LocalSystem, so there is
// nothing to resolve.
type account struct{ name string }

func lookupAccount(name string) (*account, error) {
	return nil, fmt.Errorf("--user %s: on Windows the service runs as LocalSystem; leave --user out", name)
}

func userExists(string) bool { return false }

func (a *account) checkReadable(string) error { return nil }

// restrictedDACL gives full control to SYSTEM (the service) and the Administrators
// group only, inherited by everything below, and blocks inheritance from above
// (C:\ProgramData lets every user read).
const restrictedDACL = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

// prepareDataDir creates dataDir and restricts it to SYSTEM and Administrators: the
// ledger holds customer ids and the till's unsent redemptions.
func prepareDataDir(dataDir string, _ *account) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data_dir %s: %w", dataDir, err)
	}
	sd, err := windows.SecurityDescriptorFromString(restrictedDACL)
	if err != nil {
		return fmt.Errorf("restrict data_dir %s: %w", dataDir, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("restrict data_dir %s: %w", dataDir, err)
	}
	err = windows.SetNamedSecurityInfo(dataDir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("restrict data_dir %s to SYSTEM and Administrators: %w", dataDir, err)
	}
	return nil
}
