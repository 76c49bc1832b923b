#!/usr/bin/env bash
# `cmake --install` of a build puts the libraries, headers and pkg-config files where an
# application finds them: examples/in_process.cc is compiled against the installed tree with
# `pkg-config --cflags --libs vepf-ep vepf-host` alone, and then runs an EP server and a host
# bus in one process over the loopback platform until the bus has probed the board's devices.
# Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/vepf-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
pc=$(dirname "$(find "$work/prefix" -name vepf-ep.pc | head -1)")
test -f "$pc/vepf-host.pc" || { echo "FAIL: no vepf-host.pc installed" >&2; exit 1; }
export PKG_CONFIG_PATH="$pc"
# Nothing of the source tree on the include path: only what was installed.
c++ -O1 "$src/examples/in_process.cc" $(pkg-config --cflags --libs vepf-ep vepf-host) -o "$work/in_process"

cat > "$work/board.toml" <<TOML
[board]
name = "install-test"
platform = "loopback"
[link]
ep_window_size = 4194304
rc_window_size = 4194304
[loopback]
socket = "$work/link.sock"
[[device]]
type = "rpmsg"
queue_size = 16
rpmsg = { runtime_dir = "$work/rpmsg0" }
[[device]]
type = "console"
[device.console]
host_dir = "$work/console1"
[[device.console.port]]
name = "p0"
backend = "socket"
socket = "$work/console1.sock"
TOML
out=$("$work/in_process" "$work/board.toml")
echo "$out"
grep -q "2 device(s) probed: 0:rpmsg 1:console" <<<"$out" || { echo "FAIL: the bus did not probe both devices" >&2; exit 1; }
echo "PASS: built against the installed libraries with pkg-config; EP server and host bus ran in one process"
