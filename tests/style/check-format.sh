#!/usr/bin/env bash
# Every C file of the project is formatted as .clang-format says.
set -uo pipefail
cd "${GUESTABI_SOURCE_ROOT:?}" || exit 2
command -v clang-format >/dev/null || { echo "SKIP: clang-format is not installed"; exit 77; }
mapfile -t files < <(find include lib src devices tests bench -name '*.[ch]' 2>/dev/null | sort)
out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1)
if [[ -n $out ]]; then
  echo "$out" | grep -E "^[^ ].*(warning|error):" | head -n 40
  echo "run: clang-format -i <files> (see .clang-format)"
  exit 1
fi
echo "${#files[@]} files formatted"
