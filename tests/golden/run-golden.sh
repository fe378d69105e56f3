#!/usr/bin/env bash
# Golden test for the guestabi CLI: runs the command in CASE_DIR/args (one argument per line,
# run from the source root) and compares stdout, stderr and the exit status with the files
# beside it. Only `make golden-update` rewrites them (--regenerate, for review with git diff):
# never a variable a test run inherits, so a run with GUESTABI_REGENERATE set refuses to start.
# Usage: run-golden.sh [--regenerate] GUESTABI CASE_DIR
set -uo pipefail
regenerate=0
if [[ ${1:-} == --regenerate ]]; then
  regenerate=1; shift
fi
if [[ $regenerate == 0 && -n ${GUESTABI_REGENERATE+set} ]]; then
  echo "error: GUESTABI_REGENERATE is set in the environment; a test run never rewrites its" \
    "expectations (unset it; \`make golden-update\` regenerates them)" >&2
  exit 1
fi
bin=$1 case=$2
root=${GUESTABI_SOURCE_ROOT:?}
cd "$root" || exit 2
mapfile -t args < "$case/args"
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
GUESTABI_SYSTEM_CATALOG= "$bin" "${args[@]}" >"$out" 2>"$err"
status=$?
if [[ $regenerate == 1 ]]; then
  cp "$out" "$case/stdout"; cp "$err" "$case/stderr"; echo "$status" > "$case/status"
  echo "regenerated $case"; exit 0
fi
rc=0
if [[ $status != "$(cat "$case/status")" ]]; then
  echo "exit status $status, expected $(cat "$case/status")"; rc=1
fi
diff -u "$case/stdout" "$out" || { echo "(stdout differs)"; rc=1; }
diff -u "$case/stderr" "$err" || { echo "(stderr differs)"; rc=1; }
exit $rc
