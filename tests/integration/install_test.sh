#!/usr/bin/env bash
# `cmake --install` of a build puts the libraries, headers and pkg-config files where an
# application finds them: examples/in_process.cc is compiled against the installed tree with
# `pkg-config --cflags --libs vepf-ep vepf-host` alone, and then runs an EP server and a host
# bus in one process over the loopback platform until the bus has probed the board's devices.
# Then the C rpmsg examples, compiled by the C compiler with `pkg-config vepf-rpmsg` alone: the
# echo service takes the EP's rpmsg device, the client the host's, and 500 messages go round.
# Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/vepf-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
pc=$(dirname "$(find "$work/prefix" -name vepf-ep.pc | head -1)")
test -f "$pc/vepf-host.pc" || { echo "FAIL: no vepf-host.pc installed" >&2; exit 1; }
test -f "$pc/vepf-rpmsg.pc" || { echo "FAIL: no vepf-rpmsg.pc installed" >&2; exit 1; }
export PKG_CONFIG_PATH="$pc"
# Nothing of the source tree on the include path: only what was installed.
c++ -O1 "$src/examples/in_process.cc" $(pkg-config --cflags --libs vepf-ep vepf-host) -o "$work/in_process"
for x in rpmsg_echo_service rpmsg_echo_client; do
  cc -std=c11 -Wall -Wextra -Werror -O1 "$src/examples/$x.c" $(pkg-config --cflags --libs vepf-rpmsg) -o "$work/$x"
done

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
echo "PASS: in_process built against the installed libraries with pkg-config; EP server and host bus ran in one process"

"$work/rpmsg_echo_service" "$work/board.toml" 0 > "$work/service.out" 2>&1 &
svc=$!
client=$(timeout 60 "$work/rpmsg_echo_client" "$work/board.toml" 0 500 64) || {
  echo "$client"; kill "$svc"; cat "$work/service.out"; echo "FAIL: the C echo client" >&2; exit 1; }
kill -TERM "$svc"; wait "$svc" || { cat "$work/service.out"; echo "FAIL: the C echo service" >&2; exit 1; }
echo "$client"; cat "$work/service.out"
grep -q "500 echoed, 0 corrupt" <<<"$client" || { echo "FAIL: not every message came back intact" >&2; exit 1; }
grep -q "echoed 500 message(s)" "$work/service.out" || { echo "FAIL: the service did not echo 500" >&2; exit 1; }
echo "PASS: the C rpmsg echo service and client built with pkg-config vepf-rpmsg and echoed 500 messages"
