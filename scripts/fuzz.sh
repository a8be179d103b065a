#!/usr/bin/env bash
# Runs every Go fuzz target of the repository for FUZZTIME each (default 30s).
#
# Targets are found, not listed: any `func FuzzXxx(` in a *_test.go file, in any package
# and in any module of the tree (bench/ is its own module), so a new fuzz target is run
# by `make fuzz` as soon as it exists. Go can fuzz only one target per `go test`
# invocation, hence one run per target. The seed corpus of a target lives in its
# package's testdata/fuzz/<Target>/; a failing input is written there too.
#
#   scripts/fuzz.sh            run them all
#   scripts/fuzz.sh -l         list them (package directory and target name)
#   scripts/fuzz.sh ./config   only the targets in these package directories (and below)
#   FUZZTIME=5s scripts/fuzz.sh
#   FUZZPARALLEL=1 scripts/fuzz.sh   fuzzing workers per target (default: GOMAXPROCS)
set -euo pipefail

cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-30s}"
GO="${GO:-go}"

# "dir name" pairs, one per target, sorted and unique.
discover() {
	grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(' . \
		--exclude-dir=.git --exclude-dir=vendor --exclude-dir=node_modules 2>/dev/null |
		sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#\1 \2#' |
		sort -u
}

targets="$(discover)"
if [[ -z "$targets" ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

list=false
if [[ "${1:-}" == "-l" ]]; then
	list=true
	shift
fi
if (($# > 0)); then
	selected=""
	for want in "$@"; do
		want="${want#./}"
		want="${want%/}"
		if [[ -z "$want" || "$want" == "." ]]; then want="."; else want="./$want"; fi
		selected+="$(awk -v w="$want" '$1 == w || index($1, w "/") == 1' <<<"$targets")"$'\n'
	done
	targets="$(sed '/^$/d' <<<"$selected" | sort -u)"
	if [[ -z "$targets" ]]; then
		echo "fuzz: no fuzz targets under $*" >&2
		exit 1
	fi
fi
if [[ $list == true ]]; then
	echo "$targets"
	exit 0
fi

parallel=()
if [[ -n "${FUZZPARALLEL:-}" ]]; then
	parallel=(-parallel "$FUZZPARALLEL")
fi

failed=()
count=0
while read -r dir name; do
	count=$((count + 1))
	echo "=== fuzz ${dir#./} ${name} for ${FUZZTIME}"
	# Run from the package directory so that targets in nested modules work too.
	if ! (cd "$dir" && "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "${parallel[@]}" .); then
		failed+=("${dir#./} ${name}")
	fi
done <<<"$targets"

if ((${#failed[@]} > 0)); then
	echo "fuzz: ${#failed[@]} of ${count} targets failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	echo "fuzz: failing inputs are saved under each package's testdata/fuzz/" >&2
	exit 1
fi
echo "fuzz: all ${count} targets ran for ${FUZZTIME} without a failure"
