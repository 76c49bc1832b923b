#!/usr/bin/env bash
# Every barrier names its partner (STYLE.md §3): each acquire load, release store, hw::mb(),
# dma_rmb()/dma_wmb()/wc_wmb() outside the hw/ and ring/access.hpp definitions must have a
# comment saying "pairs with" (or "Pairs with") on one of the four lines above it or on its own
# line. Prints the sites that do not and exits 1; run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=$(git ls-files '*.cc' '*.hpp' | grep -v -e '^tests/' -e 'include/vepf/hw/' -e 'include/vepf/ring/access.hpp' |
  xargs awk '
    FNR == 1 { delete prev }
    /(load_acquire|store_release)<|hw::(mb|dma_rmb|dma_wmb|wc_wmb)\(\)/ && !/^[[:space:]]*\/\// {
      ok = ($0 ~ /[Pp]airs with/)
      for (i = 1; i <= 4; i++) if (prev[i] ~ /[Pp]airs with/) ok = 1
      if (!ok) printf "%s:%d: %s\n", FILENAME, FNR, $0
    }
    { for (i = 4; i > 1; i--) prev[i] = prev[i - 1]; prev[1] = $0 }
  ')
if [ -n "$missing" ]; then
  echo "barriers without a named partner (write '// ... pairs with <barrier> in <Class::function()>'):" >&2
  echo "$missing" >&2
  exit 1
fi
echo "check-barriers: every barrier names its partner"
