#!/usr/bin/env bash
# Every test, twice: a gcc -Werror build, then a clang ASan+UBSan build; the unit suite also
# under valgrind. Prints each pass's tally and ends with one line "N passed, N failed,
# N skipped". A skipped test (exit 77, or a TAP "# SKIP" for the whole test or for one of its
# cases) is never a pass: it is named with its reason and counted as failed too, unless
# GUESTABI_ALLOW_SKIP=1 says this machine may skip (e.g. one without QEMU). `make check`
# installs everything the tests need, so on the machines the README names nothing skips.
set -uo pipefail
cd "$(dirname "$0")/.."

export GUESTABI_SYSTEM_CATALOG=          # tests never read this machine's /etc
if [[ -n ${GUESTABI_REGENERATE+set} ]]; then
  echo "error: GUESTABI_REGENERATE is set in the environment: a test run never rewrites golden" \
    "files (unset it; \`make golden-update\` regenerates them)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
jobs=$(nproc 2>/dev/null || echo 2)
total_pass=0 total_fail=0 total_skip=0

tally() {  # tally LOG_JSON LABEL
  python3 - "$1" "$2" <<'PY'
import json, re, sys
path, label = sys.argv[1], sys.argv[2]
p = f = s = 0
failed, skipped, tails = [], [], []
try:
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            r = t.get("result")
            out = t.get("stdout") or ""
            # TAP cases skipped inside a test that passed otherwise: meson calls it OK
            cases = [m.group(1).strip() + ": " + m.group(2).strip() for m in re.finditer(
                r"^ok\s+\d+\s*-?\s*([^#\n]*)#\s*SKIP\b[:\s]*(.*)$", out, re.M | re.I)]
            if r in ("OK", "EXPECTEDFAIL") and not cases:
                p += 1
            elif r in ("OK", "EXPECTEDFAIL", "SKIP"):
                s += 1
                if not cases:  # the whole test: exit 77 or TAP "1..0 # SKIP reason"
                    why = [m.group(1).strip() for m in re.finditer(
                        r"^(?:1\.\.0\s*#\s*)?SKIP\b[:\s]*(.*)$", out, re.M | re.I)]
                    tail = [l for l in out.splitlines() if l.strip()][-1:]
                    cases = [why[0] if why and why[0] else
                             "no reason given; its last line: %s" % (tail[0] if tail else "none")]
                skipped.append("%s: %s" % (t["name"], "; ".join(cases)))
            else:
                f += 1
                failed.append("%s (%s)" % (t["name"], r))
                tails.append((t["name"], (t.get("stdout") or "").splitlines()[-40:]))
except FileNotFoundError:
    f += 1
    failed.append("no test log: the build failed")
for n in failed:
    print("  FAILED  %s: %s" % (label, n), file=sys.stderr)
for n in skipped:
    print("  SKIPPED %s: %s" % (label, n), file=sys.stderr)
# The end of each failed test's own output (its assertion and the log lines before it):
# CI shows only what this script prints.
for name, tail in tails:
    print("  --- %s: last %d lines of %s" % (label, len(tail), name), file=sys.stderr)
    for line in tail:
        print("  | " + line[:300], file=sys.stderr)
print(p, f, s)
PY
}

run_pass() {  # run_pass DIR LABEL LOGBASE [meson setup args...] -- [meson test args...]
  local dir=$1 label=$2 logbase=$3; shift 3
  local setup=() test=()
  while [[ $# -gt 0 && $1 != -- ]]; do setup+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  test=("$@")
  rm -f "$dir/meson-logs/$logbase".json "$dir/meson-logs/$logbase"-*.json
  echo "== $label"
  if { [[ -f $dir/build.ninja ]] || meson setup "$dir" "${setup[@]}" >/dev/null; } &&
     ninja -C "$dir" >"$dir.ninja.log" 2>&1; then
    meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$jobs" \
      --logbase "$logbase" "${test[@]}" >"$dir.$logbase.log" 2>&1
  else
    echo "  build failed:"; tail -n 30 "$dir.ninja.log" 2>/dev/null
  fi
  # meson names the log after the wrapper too when there is one (valgrind-valgrind.json)
  local log
  log=$(ls -t "$dir/meson-logs/$logbase".json "$dir/meson-logs/$logbase"-*.json 2>/dev/null | head -n 1)
  read -r p f s < <(tally "${log:-$dir/meson-logs/$logbase.json}" "$label")
  echo "   $label: $p passed, $f failed, $s skipped"
  if [[ $f -gt 0 ]]; then
    grep -E "(FAIL|ERROR|not ok|error:)" "$dir.$logbase.log" | head -n 60
  fi
  total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
}

CC=gcc run_pass build-gcc "gcc -Werror" testlog -Dwerror=true -Dbuildtype=debugoptimized
CC=clang ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_pass build-asan "clang ASan+UBSan" testlog -Db_sanitize=address,undefined -Db_lundef=false \
  -Dbuildtype=debug -Dfuzz=true
run_pass build-gcc "valgrind (unit)" valgrind -- --suite unit \
  --wrapper "valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"

if [[ $total_skip -gt 0 ]]; then
  if [[ ${GUESTABI_ALLOW_SKIP:-} == 1 ]]; then
    echo "($total_skip skipped, allowed by GUESTABI_ALLOW_SKIP=1: see SKIPPED lines above)"
  else
    echo "($total_skip skipped, counted as failed: see SKIPPED lines above; a machine that" \
      "cannot run them says so with GUESTABI_ALLOW_SKIP=1)"
    total_fail=$((total_fail + total_skip))
  fi
fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[[ $total_fail -eq 0 ]]
