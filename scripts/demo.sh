#!/usr/bin/env bash
# make demo: a platform and two tills of one store on local ports, an offer and its
# coupons, redemptions online, an outage with a double use, the reconciliation — told
# step by step. The driver is internal/demo; it checks every step (a non-zero exit means
# one did not behave as expected) and leaves nothing running.
#
#   scripts/demo.sh [--keep] [--timeout 3m]     (make demo builds bin/tillkeep first)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${BIN:-bin/tillkeep}"
if [[ ! -x "$BIN" ]]; then
	echo "demo: $BIN is missing: run 'make demo' (or 'make build' first)" >&2
	exit 2
fi

# The demo writes its own config files; TILLKEEP_* variables of this shell would
# override them in the daemons (the driver drops them too).
exec "${GO:-go}" run ./internal/demo --bin "$BIN" "$@"
