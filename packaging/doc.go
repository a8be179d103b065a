// Package packaging holds what `make package` (scripts/package.sh) builds the Linux
// packages and the Windows zip from: the nfpm template, the maintainer scripts, the
// systemd units and the PowerShell install script. Its Go code is tests only: the units
// it ships must equal what `tillkeep service install` writes, and the .deb must install
// and purge cleanly.
//
// It must not hold product code: the binary never imports it.
package packaging
