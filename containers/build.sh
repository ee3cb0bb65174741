#!/usr/bin/env bash
# Build the Apptainer images the workflow's container: directives name (containers/<name>.sif).
# Usage, from the repository root: bash containers/build.sh [strainbench] [py4dstem] [ccstae]
# (no argument: all three). Needs apptainer (or singularity) on PATH; run with --fakeroot if your
# site requires it: APPTAINER_BUILD_ARGS=--fakeroot bash containers/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
engine=$(command -v apptainer || command -v singularity || true)
[ -n "$engine" ] || { echo "containers/build.sh: apptainer (or singularity) not found on PATH" >&2; exit 1; }
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(strainbench py4dstem ccstae)
for name in "${names[@]}"; do
  [ -f "containers/$name.def" ] || { echo "containers/build.sh: no containers/$name.def" >&2; exit 1; }
  "$engine" build ${APPTAINER_BUILD_ARGS:-} "containers/$name.sif" "containers/$name.def"
done
