# The four-device loopback board (net on TAPs in namespaces, rpmsg, block, console with one socket
# port) and its bring-up, shared by tests/integration/all_devices_test.sh and scripts/soak.sh.
# Source after scripts/lib/netns.sh; uses $work, $sock, $build, $ns_ep, $ns_host, $ep_ip, $host_ip.

# all_devices_tables SIZE: the [[device]] tables (rpmsg runtime_dir $work/rt, block image
# $work/disk.img of SIZE bytes exported on $work/blk.sock, console port "data" on
# $work/console-data.sock, host ptys under $work/console).
all_devices_tables() {
  cat <<TOML
[[device]]
type = "net"
[device.net]
mac = "02:76:65:70:66:41"
[[device]]
type = "rpmsg"
[device.rpmsg]
runtime_dir = "$work/rt"
[[device]]
type = "block"
[device.block]
path = "$work/disk.img"
size = $1
nbd_socket = "$work/blk.sock"
[[device]]
type = "console"
queue_size = 64
[device.console]
host_dir = "$work/console"
[[device.console.port]]
name = "data"
backend = "socket"
socket = "$work/console-data.sock"
TOML
}

wait_path() { for _ in $(seq "$((${2:-10} * 10))"); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# all_devices_up: after start_ep and start_host: carrier and addresses on both TAPs, the NBD
# export, both rpmsg announce sockets and the console pty; then the rpmsg echo service on the EP
# (its pid joins extra_pids) until its channel reaches the host. Says what failed on stderr.
all_devices_up() {
  { wait_carrier "$ns_host" up 10 && wait_carrier "$ns_ep" up 10; } || { echo "net: no carrier on the TAPs" >&2; return 1; }
  ip -n "$ns_ep" addr add "$ep_ip/24" dev "$(carrier "$ns_ep")"
  ip -n "$ns_host" addr add "$host_ip/24" dev "$(carrier "$ns_host")"
  wait_path "$work/blk.sock" || { echo "block: no NBD export" >&2; return 1; }
  wait_path "$work/rt/ep/announce.sock" || { echo "rpmsg: no EP announce socket" >&2; return 1; }
  wait_path "$work/console/data" || { echo "console: no host pty link" >&2; return 1; }
  "$build/tools/vepf-rpmsg/vepf-rpmsg" echo --announce "$work/rt/ep/announce.sock" --name echo >"$work/echo.log" 2>&1 &
  extra_pids="${extra_pids:-} $!"
  wait_path "$work/rt/host/echo.sock" || { echo "rpmsg: channel 'echo' not announced to the host" >&2; return 1; }
}
