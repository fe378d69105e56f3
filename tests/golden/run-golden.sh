#!/usr/bin/env bash
# Golden test for the guestabi CLI: runs the command in CASE_DIR/args (one argument per line,
# run from the source root) and compares stdout, stderr and the exit status with the files
# beside it. GUESTABI_REGENERATE=1 rewrites them instead, for review with git diff.
# Usage: run-golden.sh GUESTABI CASE_DIR
set -uo pipefail
bin=$1 case=$2
root=${GUESTABI_SOURCE_ROOT:?}
cd "$root" || exit 2
mapfile -t args < "$case/args"
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
GUESTABI_SYSTEM_CATALOG= "$bin" "${args[@]}" >"$out" 2>"$err"
status=$?
if [[ ${GUESTABI_REGENERATE:-} == 1 ]]; then
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
