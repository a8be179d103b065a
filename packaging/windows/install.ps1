<#
.SYNOPSIS
Installs, upgrades or removes tillkeep as a Windows service.

.DESCRIPTION
Run it from the unzipped folder in an elevated PowerShell (Run as Administrator):

    .\install.ps1 -Role agent              # first run: copies the example config, then stops
    notepad C:\ProgramData\tillkeep\agent.toml
    .\install.ps1 -Role agent              # second run: checks the config, installs, starts
    .\install.ps1 -Role agent              # later, from a newer zip: upgrades in place
    .\install.ps1 -Role agent -Uninstall   # removes the service; config and data stay

What it does:
  * copies tillkeep.exe to $InstallDir (default C:\Program Files\tillkeep);
  * creates $DataRoot (default C:\ProgramData\tillkeep) readable by SYSTEM and
    Administrators only: the config holds tokens and the data directory holds the
    redemptions the till has not uploaded yet;
  * copies the example config to $DataRoot\<role>.toml once, with data_dir set to
    $DataRoot\<role>, and never overwrites it afterwards;
  * runs `tillkeep config check`, then `tillkeep service install` (a service that
    starts at boot, runs as LocalSystem and is restarted 5 s after a crash) and
    `tillkeep service start`.
An upgrade stops the service (the agent drains within 5 s; everything it acknowledged
is already on disk), replaces the binary and starts it again: the journal of pending
redemptions is kept and uploaded by the new version.
#>
[CmdletBinding()]
param(
    [ValidateSet('agent', 'platform')]
    [string]$Role = 'agent',
    [string]$InstallDir = (Join-Path $env:ProgramFiles 'tillkeep'),
    [string]$DataRoot = (Join-Path $env:ProgramData 'tillkeep'),
    [switch]$Uninstall
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$serviceName = "tillkeep-$Role"
$exe = Join-Path $InstallDir 'tillkeep.exe'
$config = Join-Path $DataRoot "$Role.toml"
$dataDir = Join-Path $DataRoot $Role

function Assert-Administrator {
    $principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'Run this script in an elevated PowerShell (Run as Administrator).'
    }
}

function Invoke-Tillkeep {
    param([string[]]$Arguments)
    & $exe @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "tillkeep $($Arguments -join ' ') failed with exit code $LASTEXITCODE"
    }
}

# Only SYSTEM (the service) and Administrators may read or change anything under
# $DataRoot. SIDs rather than names, so that it works on every Windows language.
function Set-RestrictedAcl {
    param([string]$Path)
    & icacls.exe $Path /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null
    if ($LASTEXITCODE -ne 0) {
        throw "icacls could not restrict $Path (exit code $LASTEXITCODE)"
    }
}

Assert-Administrator
$existing = Get-Service -Name $serviceName -ErrorAction SilentlyContinue

if ($Uninstall) {
    if ($existing) {
        Invoke-Tillkeep @('service', 'uninstall', '--role', $Role)
    } else {
        Write-Host "$serviceName is not installed."
    }
    $others = Get-Service -Name 'tillkeep-*' -ErrorAction SilentlyContinue
    if (-not $others -and (Test-Path $exe)) {
        Remove-Item -Force $exe
    }
    Write-Host "Kept $DataRoot (config and data: it may hold redemptions not yet uploaded). Delete it by hand once you are sure."
    return
}

$source = $PSScriptRoot

# 1. The data root with its ACL, and the config (copied once, never overwritten).
New-Item -ItemType Directory -Force -Path $DataRoot | Out-Null
Set-RestrictedAcl -Path $DataRoot
New-Item -ItemType Directory -Force -Path $dataDir | Out-Null
$firstRun = $false
if (-not (Test-Path $config)) {
    $text = [IO.File]::ReadAllText((Join-Path $source "$Role.toml"))
    # A TOML literal string: backslashes stay as they are.
    $text = $text -replace '(?m)^data_dir\s*=.*$', "data_dir = '$dataDir'"
    # UTF-8 without a byte order mark: Set-Content -Encoding UTF8 would add one.
    [IO.File]::WriteAllText($config, $text, (New-Object Text.UTF8Encoding($false)))
    $firstRun = $true
}

# 2. The binary. A running service holds tillkeep.exe open: stop it first.
if ($existing -and $existing.Status -ne 'Stopped') {
    Write-Host "Stopping $serviceName for the upgrade..."
    & (Join-Path $InstallDir 'tillkeep.exe') service stop --role $Role
    if ($LASTEXITCODE -ne 0) { throw "could not stop $serviceName" }
}
New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
Copy-Item -Force (Join-Path $source 'tillkeep.exe') $exe
Write-Host "Installed $exe ($(& $exe version))"

if ($firstRun -or (Select-String -Path $config -Pattern 'change-me' -Quiet)) {
    Write-Host ''
    Write-Host "Now edit $config : set pos_token/enroll_token (or admin_token), store_id and till_id."
    Write-Host "Then run this script again to install and start $serviceName."
    return
}

# 3. The service: refuse a config that fails the check, install once, start.
Invoke-Tillkeep @('config', 'check', '--role', $Role, '--config', $config)
if (-not $existing) {
    Invoke-Tillkeep @('service', 'install', '--role', $Role, '--config', $config)
}
Invoke-Tillkeep @('service', 'start', '--role', $Role, '--config', $config)
Invoke-Tillkeep @('service', 'status', '--role', $Role, '--config', $config)
