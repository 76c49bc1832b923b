#!/usr/bin/env bash
# clang-format (.clang-format) and clang-tidy (.clang-tidy, warnings as errors) on the C++ files a
# change touches, as STYLE.md §8 asks. CI runs it after the default build (it needs that build's
# compile_commands.json).
# Usage: scripts/tidy.sh [BASE]
#   BASE: the commit the change starts from. Default: the merge base with origin/main when HEAD
#   is ahead of it, else HEAD~1 (a fresh clone of the submission: its last commit).
# A header is checked through one .cc file that includes it; files that are not in the default
# build (fuzz targets, examples) are formatted but not tidied. Exit 1 when anything is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VEPF_TIDY_BUILD:-build/default}
if [ ! -f "$build/compile_commands.json" ]; then
  echo "scripts/tidy.sh: $build/compile_commands.json is missing: run cmake --preset default first" >&2
  exit 2
fi

base=${1:-}
if [ -z "$base" ]; then
  mb=$(git merge-base HEAD origin/main 2>/dev/null || true)
  if [ -n "$mb" ] && [ "$mb" != "$(git rev-parse HEAD)" ]; then
    base=$mb
  elif git rev-parse -q --verify HEAD~1 >/dev/null; then
    base=HEAD~1
  else
    echo "scripts/tidy.sh: no earlier commit to compare with: nothing to check"
    exit 0
  fi
fi

mapfile -t files < <(git diff --name-only --diff-filter=ACMR "$base" HEAD -- '*.cc' '*.hpp' '*.c' '*.h' |
                     grep -v '^tests/fuzz/corpus/' || true)
if [ "${#files[@]}" -eq 0 ]; then
  echo "scripts/tidy.sh: no C/C++ file changed since $(git rev-parse --short "$base")"
  exit 0
fi
echo "scripts/tidy.sh: ${#files[@]} C/C++ file(s) changed since $(git rev-parse --short "$base")"

status=0
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "scripts/tidy.sh: not formatted as .clang-format says: run clang-format -i on the files above" >&2
  status=1
fi

# The translation units to tidy: each changed .cc in the build, and for each changed header
# one .cc of the build that includes it.
in_build() { grep -q "\"file\": \"$PWD/$1\"" "$build/compile_commands.json"; }
declare -A units=()
for f in "${files[@]}"; do
  case "$f" in
    *.cc|*.c) in_build "$f" && units[$f]=1 ;;
    *.hpp|*.h)
      name=$(basename "$f")
      for cc in $(git grep -l "include .*[/\"]$name\"" -- '*.cc' || true); do
        if in_build "$cc"; then units[$cc]=1; break; fi
      done ;;
  esac
done
if [ "${#units[@]}" -gt 0 ]; then
  echo "scripts/tidy.sh: clang-tidy on ${#units[@]} translation unit(s)"
  if ! printf '%s\n' "${!units[@]}" | xargs -P "${VEPF_JOBS:-2}" -n 1 clang-tidy -p "$build" --quiet; then
    echo "scripts/tidy.sh: clang-tidy reported the problems above (.clang-tidy)" >&2
    status=1
  fi
fi
exit $status
