#!/usr/bin/env bash
# scripts/package.sh — what `make package` runs.
#
# Builds static binaries for linux/amd64, linux/arm64, windows/amd64 and darwin/arm64,
# a .deb and an .rpm of each role (agent, platform) for each Linux architecture, and a
# Windows zip (tillkeep.exe, example configs, install.ps1, install.md), all into dist/.
#
# Packages are built with nfpm, run at a pinned version with `go install pkg@version`
# into a scratch directory, so that it never enters the product's go.mod.
#
# Environment (all optional):
#   VERSION   package version (default: from `git describe`, 0.0.0~git<hash> without a tag)
#   OUT       output directory (default: dist)
#   ROLES     roles to package (default: "agent platform")
#   ARCHES    Linux architectures (default: "amd64 arm64")
#   FORMATS   Linux package formats (default: "deb rpm")
#   EXTRAS    1 to also build the windows/darwin binaries and the Windows zip (default 1)
#   NFPM      an nfpm binary to use instead of building the pinned one
set -euo pipefail

cd "$(dirname "$0")/.."

# v2.46 and later need go.digitalxero.dev/go-msix, which the module proxy refuses to
# serve here (403); v2.45.2 is the newest release that builds without it.
NFPM_MODULE=github.com/goreleaser/nfpm/v2/cmd/nfpm
NFPM_VERSION=v2.45.2

GO=${GO:-go}
OUT=${OUT:-dist}
ROLES=${ROLES:-agent platform}
ARCHES=${ARCHES:-amd64 arm64}
FORMATS=${FORMATS:-deb rpm}
EXTRAS=${EXTRAS:-1}

log() { printf '==> %s\n' "$*"; }

# Package versions must start with a digit: v1.2.3 -> 1.2.3, v1.2.3-4-gabc -> 1.2.3+4.gabc,
# no tag -> 0.0.0~git<hash> (sorts before any release).
package_version() {
	local d
	if d=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
		d=${d#v}
		d=${d/-dirty/.dirty}
		if [[ $d =~ ^([0-9][^-]*)-([0-9]+)-(g[0-9a-f]+)(.*)$ ]]; then
			d="${BASH_REMATCH[1]}+${BASH_REMATCH[2]}.${BASH_REMATCH[3]}${BASH_REMATCH[4]}"
		fi
		echo "$d"
	elif d=$(git rev-parse --short HEAD 2>/dev/null); then
		echo "0.0.0~git$d"
	else
		echo "0.0.0~dev"
	fi
}
VERSION=${VERSION:-$(package_version)}
if [[ ! $VERSION =~ ^[0-9] ]]; then
	echo "package.sh: VERSION=$VERSION must start with a digit" >&2
	exit 2
fi

mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- binaries --------------------------------------------------------------------------
build() { # GOOS GOARCH
	local os=$1 arch=$2 exe=tillkeep
	[[ $os == windows ]] && exe=tillkeep.exe
	local dst="$OUT/bin/${os}_${arch}/$exe"
	log "build $dst ($VERSION)"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION" -o "$dst" ./cmd/tillkeep
}
for arch in $ARCHES; do
	build linux "$arch"
done
if [[ $EXTRAS == 1 ]]; then
	build windows amd64
	build darwin arm64
fi

# --- Linux packages --------------------------------------------------------------------
nfpm=${NFPM:-}
if [[ -z $nfpm ]]; then
	log "build nfpm $NFPM_VERSION"
	GOBIN="$work/tools" "$GO" install "$NFPM_MODULE@$NFPM_VERSION"
	nfpm="$work/tools/nfpm"
fi

summary() {
	case $1 in
		agent) echo "tillkeep till agent: offline-safe coupon redemption for the POS" ;;
		platform) echo "tillkeep central platform: offers, coupons, reconciliation" ;;
	esac
}

for role in $ROLES; do
	case $role in
		agent) other=platform ;;
		platform) other=agent ;;
		*) echo "package.sh: unknown role $role" >&2; exit 2 ;;
	esac
	scripts="$work/scripts/$role"
	mkdir -p "$scripts/deb" "$scripts/rpm"
	for f in packaging/deb/*.in packaging/rpm/*.in; do
		kind=$(basename "$(dirname "$f")")
		dst="$scripts/$kind/$(basename "$f" .in)"
		sed "s/@ROLE@/$role/g" "$f" >"$dst"
		chmod 0755 "$dst"
	done
	for arch in $ARCHES; do
		conf="$work/nfpm-$role-$arch.yaml"
		sed -e "s|@ROLE@|$role|g" -e "s|@OTHER@|$other|g" -e "s|@ARCH@|$arch|g" \
			-e "s|@VERSION@|$VERSION|g" -e "s|@BINARY@|$OUT/bin/linux_$arch/tillkeep|g" \
			-e "s|@SCRIPTS@|$scripts|g" -e "s|@SUMMARY@|$(summary "$role")|g" \
			packaging/nfpm.yaml.in >"$conf"
		for format in $FORMATS; do
			target="$OUT/tillkeep-${role}_${VERSION}_linux_${arch}.$format"
			log "package $target"
			"$nfpm" package --config "$conf" --packager "$format" --target "$target" >/dev/null
		done
	done
done

# --- Windows zip -----------------------------------------------------------------------
if [[ $EXTRAS == 1 ]]; then
	zipdir="$work/tillkeep_${VERSION}_windows_amd64"
	mkdir -p "$zipdir"
	cp "$OUT/bin/windows_amd64/tillkeep.exe" packaging/windows/install.ps1 \
		configs/agent.toml configs/platform.toml docs/install.md "$zipdir/"
	zipfile="$PWD/$OUT/tillkeep_${VERSION}_windows_amd64.zip"
	rm -f "$zipfile"
	log "zip $OUT/$(basename "$zipfile")"
	if ! command -v zip >/dev/null; then
		echo "package.sh: the zip command is needed for the Windows zip (apt-get install zip)" >&2
		exit 1
	fi
	(cd "$work" && zip -q -r -X "$zipfile" "$(basename "$zipdir")")
fi

log "done: $(cd "$OUT" && ls | tr '\n' ' ')"
