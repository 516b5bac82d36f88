#!/usr/bin/env bash
# Acceptance check of the fuzz targets: each must find its planted bug within SECONDS (default 60).
#
#   tests/fuzz/plant.sh [SECONDS]        (after scripts/dev fuzz has configured build-fuzz/)
#
# Builds <target>_planted_fuzz for every target (a copy of one library file with
# tests/fuzz/plant/<target>.patch applied, in build-fuzz/tests/fuzz/plant/; see
# tests/fuzz/CMakeLists.txt), runs each from its seed corpus with an empty work corpus, and prints
# the seconds to the finding. Exits non-zero when a planted bug is not found. Restores
# build-fuzz's configuration without planted targets at the end. Environment: BUILD_DIR
# (default build-fuzz), JOBS, FUZZ_TARGETS, FUZZ_ARGS.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
seconds=${1:-60}
targets=${FUZZ_TARGETS:-all}
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DGATEWAY_FUZZ=ON -DGATEWAY_FUZZ_PLANT="${targets// /;}" >/dev/null
trap 'cmake -S "$root" -B "$build" -DGATEWAY_FUZZ_PLANT= >/dev/null' EXIT
cmake --build "$build" --parallel "${JOBS:-$(nproc)}" --target plant
FUZZ_PLANTED=1 "$root/tests/fuzz/run.sh" "$build" "$seconds"
