#!/usr/bin/env bash
# The project and its peers side by side in one run. These VMs' vCPUs move between host cores,
# which swings every cross-core figure by up to 4x within minutes, so only ratios of runs taken
# back to back mean anything: each comparison alternates ours (A) and the peer's (B) as
# A B, B A, A B, ... for --pairs pairs, and reports each pair's ratio ours/peer with the median
# and the spread (min-max) of the ratios.
#
#   ring  vepf-bench-ring (poll, one copy) against DPDK 22.11 dpdk-testpmd, net_virtio_user
#         (txonly/rxonly) <-> net_vhost (rxonly/txonly) on 2 MiB hugepages, split ring, queue
#         256, in each direction, 64 B and 1500 B: messages per second
#   rtt   vepf-bench-ring --pingpong, polling against a cache-line ping-pong and notified
#         (EVENT_IDX + eventfd) against an eventfd ping-pong: round-trip p50
#   tcp   iperf3 TCP through the loopback demo's TAPs (vepf-ep <-> virtio-net <-> vepf-host)
#         against TCP over a veth pair between two namespaces, each direction: bits per second,
#         with the demo board plus [affinity] putting both programs on one CPU (every signal
#         across the link then wakes a thread on the CPU that sent it, not on the other vCPU),
#         then again with them unpinned (taskset back to every CPU), for reference;
#         then the two programs alone: CPU over 30 s of an idle link, and the non-posted reads
#         each makes over 60 s of iperf3 traffic both ways (their SIGUSR1 link-model reports)
#   rpmsg scripts/bench/rpmsg_bench.py through an rpmsg channel of a loopback link of its own
#         (its service registered with vepf-ep's announce socket, its client on vepf-host's
#         channel socket) against the same program over a pair of connected unix SOCK_SEQPACKET
#         sockets, 64 B messages: round-trip p50 of one message at a time, and messages per
#         second of a one-way stream (counted where they arrive)
#   inproc rpmsg endpoints in one process through the C API (vepf-bench-rpmsg), both sides
#         polling against the cache-line ping-pong and sleeping against the eventfd ping-pong:
#         round-trip p50; then ours alone: the polling round trip and one-way messages per second
#   block nbdcopy --no-extents reading the whole vepf-host NBD export of that link's virtio-blk
#         device (a file of random bytes on the EP) to null:, and writing it from a file, against
#         the same nbdcopy command on qemu-nbd serving the same file: MiB per second; then
#         qemu-img bench, 4 KiB reads 64 KiB apart, queue depth 32, on both: I/Os per second
#
# Writes build/bench/compare.{jsonl,md,png} (raw pairs, the Markdown table, a plot of the
# ratios). Needs root (hugepages, namespaces); leaves nothing behind. Takes about 13 minutes
# with the defaults.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/bench/compare.sh [--pairs N] [--only LIST] [--build-dir DIR] [--out DIR] [--seconds S] [--smoke]
  --pairs N        pairs per comparison, at least 5 (default 5)
  --only LIST      comma-separated subset of: ring,rtt,tcp,rpmsg,inproc,block (default: all)
  --build-dir DIR  where the programs were built (default: build/default)
  --out DIR        where the report goes (default: build/bench)
  --seconds S      length of each of our runs, each iperf3 run, each rpmsg run and each series of
                   nbdcopy runs (default 3; a DPDK run lasts until
                   its receiver has printed 8 figures, one a second)
  --smoke          one pair of 1 s runs per comparison, 64 B only: checks that every part runs
                   (CI); its figures are not a measurement
USAGE
}

top=$(cd "$(dirname "$0")/../.." && pwd)
build="$top/build/default"
out="$top/build/bench"
pairs=5
all=ring,rtt,tcp,rpmsg,inproc,block
only=$all
secs=3
smoke=0
dpdk_figures=8
dpdk_deadline=60
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --build-dir) build=$(cd "$2" && pwd); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$pairs$secs" in *[!0-9]*|"") echo "compare: --pairs and --seconds take whole numbers" >&2; exit 2 ;; esac
if [ "$smoke" = 1 ]; then pairs=1 secs=1 dpdk_figures=4; fi
[ "$pairs" -ge 5 ] || [ "$smoke" = 1 ] || { echo "compare: --pairs must be at least 5 (a median of fewer pairs says little here)" >&2; exit 2; }
[ "$secs" -ge 1 ] || { echo "compare: --seconds must be at least 1" >&2; exit 2; }
[ "$only" = all ] && only=$all
for s in ${only//,/ }; do
  case "$s" in ring|rtt|tcp|rpmsg|inproc|block) ;; *) echo "compare: --only: unknown comparison '$s' (${all//,/, })" >&2; exit 2 ;; esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
[ "$(id -u)" -eq 0 ] || { echo "compare: needs root (hugepages, network namespaces, TAP devices)" >&2; exit 2; }
bench_ring="$build/bench/vepf-bench-ring"
[ -x "$bench_ring" ] || { echo "compare: no $bench_ring: build first (cmake --build --preset default)" >&2; exit 2; }
need=(python3 gnuplot)
want ring && need+=(dpdk-testpmd)
want tcp && need+=(iperf3 ip taskset)
want block && need+=(nbdcopy qemu-nbd qemu-img)
for t in "${need[@]}"; do
  command -v "$t" >/dev/null || { echo "compare: '$t' missing: run scripts/install-deps.sh" >&2; exit 2; }
done

mkdir -p "$out"
results="$out/compare.jsonl"
: >"$results"

# ---- cleanup of everything this script sets up (namespaces come from scripts/lib/netns.sh)
board="$top/board-configs/loopback.toml"
# shellcheck source=../lib/netns.sh
. "$top/scripts/lib/netns.sh"
huge_dir="$work/huge"
huge_old=
veth_a="vepf-va-$$"
veth_b="vepf-vb-$$"
compare_cleanup() {
  local rc=$?
  if mountpoint -q "$huge_dir" 2>/dev/null; then umount "$huge_dir" || true; fi
  [ -n "$huge_old" ] && echo "$huge_old" >/proc/sys/vm/nr_hugepages
  ip netns del "$veth_a" 2>/dev/null || true
  ip netns del "$veth_b" 2>/dev/null || true
  (exit "$rc")
  netns_cleanup
}
trap compare_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# record NAME UNIT BETTER TARGET OURS PEER PEER_NAME: one pair's figures, appended to the results.
record() {
  printf '{"name":"%s","unit":"%s","better":"%s","target":"%s","ours":%s,"peer":%s,"peer_name":"%s"}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$7" >>"$results"
  printf '  %-44s ours %10.3f  %-22s %10.3f  ratio %.3f\n' "$1" "$5" "$7" "$6" "$(python3 -c "print($5 / $6 if $6 else 0)")"
}

# check NAME VALUE TARGET: a figure of ours alone, against a target.
check() {
  printf '{"check":true,"name":"%s","value":%s,"target":"%s"}\n' "$1" "$2" "$3" >>"$results"
  printf '  %-56s %s (target %s)\n' "$1" "$2" "$3"
}

# pairs_of NAME UNIT BETTER TARGET PEER_NAME OURS_FN PEER_FN: runs the A B B A pairs.
pairs_of() {
  local name=$1 unit=$2 better=$3 target=$4 peer_name=$5 ours_fn=$6 peer_fn=$7 i a b
  echo "== $name: ours against $peer_name, $pairs pairs"
  for i in $(seq 0 $((pairs - 1))); do
    if [ $((i % 2)) -eq 0 ]; then
      a=$($ours_fn); b=$($peer_fn)
    else
      b=$($peer_fn); a=$($ours_fn)
    fi
    record "$name" "$unit" "$better" "$target" "$a" "$b" "$peer_name"
  done
}

json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0]$1)"; }

# ---- ring: vepf-bench-ring against dpdk-testpmd
ring_dir='' ring_size=''
ours_ring() {
  "$bench_ring" --json --mode poll --copies 1 --direction "$ring_dir" --size "$ring_size" --ms $((secs * 1000)) \
    | json_get '["messages_per_s"] / 1e6'
}
hugepages_up() {
  huge_old=$(cat /proc/sys/vm/nr_hugepages)
  [ "$huge_old" -ge 512 ] || echo 512 >/proc/sys/vm/nr_hugepages
  mkdir -p "$huge_dir"
  mount -t hugetlbfs -o pagesize=2M nodev "$huge_dir"
}
# One DPDK run: virtio-user (the driver) and vhost-user (the device) as two testpmd processes,
# their forwarding cores on CPU 1 and CPU 0 as ours. testpmd prints Rx-pps once a second; the run
# lasts until the receiver has printed $dpdk_figures non-zero figures (its start-up, zeroing the
# hugepages of a 155456-mbuf pool, takes 1 to 5 s on these VMs and must not eat the measuring
# time) or $dpdk_deadline s have passed. Prints the median of those figures after the first (a
# partial second), in millions, or 0 when there were fewer than three.
peer_ring_once() {
  local mem=(--no-pci --huge-dir "$huge_dir" --in-memory --single-file-segments -m 256)
  local common=(-- --nb-cores=1 --rxq=1 --txq=1 --txpkts="$ring_size" --stats-period=1 --no-lsc-interrupt)
  local vh_mode vu_mode rx_log s="$work/vhost.sock" vh vu end
  if [ "$ring_dir" = to-device ]; then vh_mode=rxonly vu_mode=txonly rx_log=$work/vh.log
  else vh_mode=txonly vu_mode=rxonly rx_log=$work/vu.log; fi
  rm -f "$s"
  timeout -s INT $((dpdk_deadline + 5)) dpdk-testpmd --lcores '0@1,1@0' "${mem[@]}" --file-prefix="vh$$" \
    --vdev "net_vhost0,iface=$s,queues=1" "${common[@]}" --forward-mode=$vh_mode >"$work/vh.log" 2>&1 &
  vh=$!
  extra_pids="$extra_pids $vh"
  end=$((SECONDS + dpdk_deadline))
  while [ ! -S "$s" ] && [ "$SECONDS" -lt "$end" ] && kill -0 "$vh" 2>/dev/null; do sleep 0.05; done
  timeout -s INT "$dpdk_deadline" dpdk-testpmd --lcores '0@0,1@1' "${mem[@]}" --file-prefix="vu$$" \
    --vdev "net_virtio_user0,path=$s,queues=1,queue_size=256,packed_vq=0" "${common[@]}" \
    --forward-mode=$vu_mode >"$work/vu.log" 2>&1 &
  vu=$!
  extra_pids="$extra_pids $vu"
  while [ "$(grep -cE 'Rx-pps:[[:space:]]+[1-9]' "$rx_log" 2>/dev/null)" -lt "$dpdk_figures" ] \
    && [ "$SECONDS" -lt "$end" ] && kill -0 "$vu" 2>/dev/null && kill -0 "$vh" 2>/dev/null; do
    sleep 0.2
  done
  kill -INT "$vu" 2>/dev/null || true
  wait "$vu" 2>/dev/null || true
  kill -INT "$vh" 2>/dev/null || true
  wait "$vh" 2>/dev/null || true
  extra_pids=${extra_pids% "$vh $vu"}
  python3 - "$rx_log" <<'PY'
import re, statistics, sys
v = [int(m.group(1)) for m in re.finditer(r"Rx-pps:\s+(\d+)", open(sys.argv[1]).read()) if int(m.group(1)) > 0]
print(f"{statistics.median(v[1:]) / 1e6:.4f}" if len(v) >= 3 else 0)
PY
}
# A testpmd pair that gave no figure is run again, up to three times, before 0 stands; each
# failed attempt shows how many figures each process printed and its last EAL or error lines.
peer_ring() {
  local r i
  for i in 1 2 3; do
    r=$(peer_ring_once)
    [ "$r" != 0 ] && { echo "$r"; return; }
    {
      echo "  (testpmd gave fewer than 3 figures in $dpdk_deadline s, attempt $i of 3)"
      for l in vh vu; do
        echo "    $l: $(grep -cE 'Rx-pps:[[:space:]]+[1-9]' "$work/$l.log") non-zero Rx-pps, $(grep -cE 'Tx-pps:[[:space:]]+[1-9]' "$work/$l.log") non-zero Tx-pps"
        grep -iE 'EAL:|error|fail|cannot' "$work/$l.log" | tail -n 4 | sed "s/^/    $l: /"
      done
    } >&2
  done
  echo 0
}
if want ring; then
  hugepages_up
  ring_dirs="to-device to-driver" ring_sizes="64 1500"
  [ "$smoke" = 1 ] && ring_dirs=to-device ring_sizes=64
  for ring_dir in $ring_dirs; do
    for ring_size in $ring_sizes; do
      target="≥ 1.3×"; [ "$ring_size" = 64 ] || target="≥ 1.0×"
      pairs_of "ring $ring_size B $ring_dir, poll, 1 copy" "Mmsg/s" higher "$target" "DPDK testpmd vhost/virtio-user" ours_ring peer_ring
    done
  done
fi

# ---- rtt: the ring's round trip against a cache line and an eventfd pair
rtt_mode=
ours_rtt() { "$bench_ring" --json --pingpong --mode "$rtt_mode" --size 64 --ms $((secs * 1000)) | json_get '["rtt_p50_us"]'; }
peer_rtt() {
  local ref=cacheline; [ "$rtt_mode" = poll ] || ref=eventfd
  "$bench_ring" --json --reference "$ref" --ms $((secs * 1000)) | json_get '["rtt_p50_us"]'
}
if want rtt; then
  rtt_mode=poll
  pairs_of "ring RTT p50, 64 B, polling" "µs" lower "≤ 4×" "cache-line ping-pong" ours_rtt peer_rtt
  rtt_mode=notify
  pairs_of "ring RTT p50, 64 B, notified" "µs" lower "≤ 1.15×" "eventfd ping-pong" ours_rtt peer_rtt
fi

# ---- tcp: iperf3 through the TAPs against a veth pair
tcp_reverse=
iperf_gbit() {  # NS SERVER_IP: one iperf3 run, prints Gbit/s received
  ip netns exec "$1" timeout $((secs + 20)) iperf3 -c "$2" -t "$secs" -J $tcp_reverse \
    | python3 -c "import json,sys; print(json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e9)"
}
ours_tcp() { iperf_gbit "$ns_host" "$ep_ip"; }
peer_tcp() { iperf_gbit "$veth_a" 198.18.1.2; }
if want tcp; then
  netns_setup
  trap compare_cleanup EXIT
  # The demo board, both programs on the first CPU this script may use.
  tcp_cpu=$(python3 -c "import os; print(min(os.sched_getaffinity(0)))")
  all_cpus=$(python3 -c "import os; print(','.join(map(str, sorted(os.sched_getaffinity(0)))))")
  board="$work/tcp.toml"
  printf '%s\n[affinity]\nep = [%s]\nhost = [%s]\n' "$(cat "$top/board-configs/loopback.toml")" "$tcp_cpu" "$tcp_cpu" \
    >"$board"
  # shellcheck disable=SC2119 # no extra arguments for the programs
  start_ep
  # shellcheck disable=SC2119
  start_host
  if ! wait_carrier "$ns_ep" up 10 || ! wait_carrier "$ns_host" up 10; then
    show_logs
    echo "compare: the loopback link did not come up" >&2
    exit 1
  fi
  ip -n "$ns_ep" addr add "$ep_ip/24" dev "$(carrier "$ns_ep")"
  ip -n "$ns_host" addr add "$host_ip/24" dev "$(carrier "$ns_host")"
  ip netns add "$veth_a"
  ip netns add "$veth_b"
  ip -n "$veth_a" link add veth0 type veth peer name veth1 netns "$veth_b"
  ip -n "$veth_a" addr add 198.18.1.1/24 dev veth0
  ip -n "$veth_b" addr add 198.18.1.2/24 dev veth1
  for n in "$veth_a" "$veth_b"; do ip -n "$n" link set lo up; done
  ip -n "$veth_a" link set veth0 up
  ip -n "$veth_b" link set veth1 up
  ip netns exec "$ns_ep" iperf3 -s -B "$ep_ip" >"$work/iperf-ep.log" 2>&1 &
  extra_pids="$extra_pids $!"
  ip netns exec "$veth_b" iperf3 -s -B 198.18.1.2 >"$work/iperf-veth.log" 2>&1 &
  extra_pids="$extra_pids $!"
  for _ in $(seq 50); do
    ip netns exec "$ns_ep" ss -ltn | grep -q ":5201 " && ip netns exec "$veth_b" ss -ltn | grep -q ":5201 " && break
    sleep 0.1
  done
  for pid in "$ep_pid" "$host_pid"; do
    if [ "$(awk '/^Cpus_allowed_list:/ {print $2}' "/proc/$pid/status")" != "$tcp_cpu" ]; then
      echo "compare: [affinity] did not put process $pid on CPU $tcp_cpu" >&2
      exit 1
    fi
  done
  tcp_reverse=
  pairs_of "iperf3 TCP host->EP" "Gbit/s" higher "≥ 0.6×" "TCP over a veth pair" ours_tcp peer_tcp
  tcp_reverse=-R
  pairs_of "iperf3 TCP EP->host" "Gbit/s" higher "≥ 0.6×" "TCP over a veth pair" ours_tcp peer_tcp
  taskset -a -c -p "$all_cpus" "$ep_pid" >/dev/null
  taskset -a -c -p "$all_cpus" "$host_pid" >/dev/null
  tcp_reverse=
  pairs_of "iperf3 TCP host->EP, programs unpinned" "Gbit/s" higher "—" "TCP over a veth pair" ours_tcp peer_tcp
  tcp_reverse=-R
  pairs_of "iperf3 TCP EP->host, programs unpinned" "Gbit/s" higher "—" "TCP over a veth pair" ours_tcp peer_tcp

  # ---- the programs themselves: CPU of an idle link, non-posted reads after setup under traffic
  idle_secs=30 traffic_secs=60
  [ "$smoke" = 1 ] && idle_secs=2 traffic_secs=2
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  echo "== the programs on an idle link, $idle_secs s"
  hz=$(getconf CLK_TCK)
  e0=$(cpu_ticks "$ep_pid"); h0=$(cpu_ticks "$host_pid")
  sleep "$idle_secs"
  e1=$(cpu_ticks "$ep_pid"); h1=$(cpu_ticks "$host_pid")
  check "vepf-ep CPU on an idle link, %" "$(python3 -c "print(round(100 * ($e1 - $e0) / $hz / $idle_secs, 3))")" "≤ 1"
  check "vepf-host CPU on an idle link, %" "$(python3 -c "print(round(100 * ($h1 - $h0) / $hz / $idle_secs, 3))")" "≤ 1"
  # Non-posted reads after setup: the link-model totals each program prints on SIGUSR1.
  npr_after_setup() {  # LOG: non-posted reads minus those of setup, from the last report
    grep -h "totals: non-posted reads" "$1" | tail -n 1 |
      sed -E 's/.*non-posted reads ([0-9]+) \([0-9]+ B; setup ([0-9]+)\).*/\1 \2/' | awk '{print $1 - $2}'
  }
  report_now() {
    kill -USR1 "$ep_pid" "$host_pid"
    sleep 0.5
  }
  report_now
  ep_npr0=$(npr_after_setup "$work/ep.log"); host_npr0=$(npr_after_setup "$work/host.log")
  echo "== non-posted reads over $traffic_secs s of iperf3 traffic both ways"
  ip netns exec "$ns_host" timeout $((traffic_secs + 20)) iperf3 -c "$ep_ip" -t "$traffic_secs" --bidir >"$work/iperf-bidir.log" 2>&1 ||
    { cat "$work/iperf-bidir.log"; echo "compare: iperf3 --bidir failed" >&2; exit 1; }
  report_now
  check "vepf-ep non-posted reads during $traffic_secs s of traffic" "$(( $(npr_after_setup "$work/ep.log") - ep_npr0 ))" "0"
  check "vepf-host non-posted reads during $traffic_secs s of traffic" "$(( $(npr_after_setup "$work/host.log") - host_npr0 ))" "0"
fi

# ---- rpmsg and block: a loopback link of their own, outside the namespaces: vepf-ep with an rpmsg
# device and a virtio-blk device on a file of random bytes, vepf-host serving that as NBD. Every
# process goes in extra_pids and every file under $work, for compare_cleanup.
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
wait_path() { local _; for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
bench_board="$work/bench.toml"
bench_rt="$work/rt"
disk_img="$work/disk.img"
src_img="$work/src.img"
blk_sock="$work/blk.sock"
disk_mib=256
[ "$smoke" = 1 ] && disk_mib=32
bench_link=0
bench_link_fail() {
  echo "--- vepf-ep log (rpmsg and block link)"; cat "$work/bench-ep.log" 2>/dev/null
  echo "--- vepf-host log (rpmsg and block link)"; cat "$work/bench-host.log" 2>/dev/null
  echo "compare: $1" >&2
  exit 1
}
bench_link_up() {  # once, for whichever of rpmsg and block comes first
  [ "$bench_link" = 0 ] || return 0
  bench_link=1
  if [ ! -x "$build/ep-firmware/vepf-ep" ] || [ ! -x "$build/host-driver/vepf-host" ]; then
    echo "compare: no vepf-ep or vepf-host in $build: build first (cmake --build --preset default)" >&2
    exit 2
  fi
  head -c $((disk_mib << 20)) /dev/urandom >"$disk_img"
  cat >"$bench_board" <<TOML
[board]
name = "compare-rpmsg-block"
platform = "loopback"
[link]
ep_window_size = 8388608
rc_window_size = 8388608
[loopback]
socket = "$work/bench-link.sock"
[[device]]
type = "rpmsg"
queue_size = 256
[device.rpmsg]
runtime_dir = "$bench_rt"
[[device]]
type = "block"
queue_size = 128
[device.block]
path = "$disk_img"
block_size = 4096
nbd_socket = "$blk_sock"
TOML
  "$build/ep-firmware/vepf-ep" --board "$bench_board" >"$work/bench-ep.log" 2>&1 &
  extra_pids="$extra_pids $!"
  wait_path "$bench_rt/ep/announce.sock" || bench_link_fail "vepf-ep did not come up"
  "$build/host-driver/vepf-host" --board "$bench_board" --once >"$work/bench-host.log" 2>&1 &
  extra_pids="$extra_pids $!"
  if ! wait_path "$blk_sock" || ! wait_path "$bench_rt/host/announce.sock"; then bench_link_fail "vepf-host did not come up"; fi
}

# ---- rpmsg: scripts/bench/rpmsg_bench.py through an rpmsg channel against a unix socket pair
rpmsg_py="$top/scripts/bench/rpmsg_bench.py"
rpmsg_ours_sock="$bench_rt/host/bench.sock"
rpmsg_peer_sock="$work/peer-rpmsg.sock"
rpmsg_run() {  # SOCKET rtt|stream: the client's JSON line
  timeout $((secs + 30)) python3 "$rpmsg_py" "$2" --socket "$1" --seconds "$secs" --size 64
}
rpmsg_rtt() { rpmsg_run "$1" rtt | json_field p50_us; }
rpmsg_stream() {  # SOCKET WHO: thousands of messages per second arrived; losses told on stderr
  local j
  j=$(rpmsg_run "$1" stream) || return 1
  python3 - "$j" "$2" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
if d["lost"]:
    print(f"  ({sys.argv[2]}: {d['lost']} of {d['sent']} messages lost)", file=sys.stderr)
print(d["msgs_per_s"] / 1e3)
PY
}
ours_rpmsg_rtt() { rpmsg_rtt "$rpmsg_ours_sock"; }
peer_rpmsg_rtt() { rpmsg_rtt "$rpmsg_peer_sock"; }
ours_rpmsg_stream() { rpmsg_stream "$rpmsg_ours_sock" ours; }
peer_rpmsg_stream() { rpmsg_stream "$rpmsg_peer_sock" peer; }
if want rpmsg; then
  bench_link_up
  # The service of the channel on the EP side, and the same service on a socket of its own.
  python3 "$rpmsg_py" serve --announce "$bench_rt/ep/announce.sock" --name bench >"$work/rpmsg-ours.log" 2>&1 &
  extra_pids="$extra_pids $!"
  python3 "$rpmsg_py" serve --listen "$rpmsg_peer_sock" >"$work/rpmsg-peer.log" 2>&1 &
  extra_pids="$extra_pids $!"
  wait_path "$rpmsg_ours_sock" || { cat "$work/rpmsg-ours.log"; bench_link_fail "the rpmsg channel did not reach vepf-host"; }
  wait_path "$rpmsg_peer_sock" || { cat "$work/rpmsg-peer.log"; echo "compare: the peer rpmsg service did not start" >&2; exit 1; }
  pairs_of "rpmsg RTT p50, 64 B" "µs" lower "≤ 1.5×" "unix seqpacket pair" ours_rpmsg_rtt peer_rpmsg_rtt
  pairs_of "rpmsg one-way stream, 64 B" "kmsg/s" higher "≥ 0.5×" "unix seqpacket pair" ours_rpmsg_stream peer_rpmsg_stream
fi

# ---- inproc: rpmsg endpoints in one process through the C API (vepf-bench-rpmsg: the EP's
# device on one thread, the host's driver on another), against the ring's references
bench_rpmsg="$build/bench/vepf-bench-rpmsg"
inproc_wait=
ours_inproc_rtt() {
  "$bench_rpmsg" --json --test rtt --wait "$inproc_wait" --ms $((secs * 1000)) | json_field rtt_p50_us
}
peer_inproc_rtt() {
  local ref=cacheline; [ "$inproc_wait" = poll ] || ref=eventfd
  "$bench_ring" --json --reference "$ref" --ms $((secs * 1000)) | json_get '["rtt_p50_us"]'
}
median() { python3 -c "import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:]), 3))" "$@"; }
if want inproc; then
  [ -x "$bench_rpmsg" ] || { echo "compare: no $bench_rpmsg: build first" >&2; exit 2; }
  inproc_wait=poll
  pairs_of "rpmsg in-process RTT p50, 64 B, polling" "µs" lower "—" "cache-line ping-pong" ours_inproc_rtt peer_inproc_rtt
  inproc_wait=sleep
  pairs_of "rpmsg in-process RTT p50, 64 B, sleeping" "µs" lower "≤ 1.2×" "eventfd ping-pong" ours_inproc_rtt peer_inproc_rtt
  # The issue's absolute figures, medians of --pairs runs of ours alone.
  echo "== rpmsg in-process, both sides polling, 64 B: $pairs runs each"
  rtts=() rates=()
  for _ in $(seq "$pairs"); do
    rtts+=("$("$bench_rpmsg" --json --test rtt --wait poll --ms $((secs * 1000)) | json_field rtt_p50_us)")
    rates+=("$("$bench_rpmsg" --json --test stream --wait poll --ms $((secs * 1000)) | json_field msgs_per_s)")
  done
  check "rpmsg in-process RTT p50, polling, µs (median)" "$(median "${rtts[@]}")" "≤ 5"
  check "rpmsg in-process one-way, polling, msg/s (median)" "$(median "${rates[@]}")" "≥ 1000000"
fi

# ---- block: nbdcopy on vepf-host's NBD export against nbdcopy on qemu-nbd, the same file
ours_uri="nbd+unix:///?socket=$blk_sock"
peer_uri="nbd+unix:///?socket=$work/qemu-nbd.sock"
nbd_dir=
nbd_mib_s() {  # URI: whole-export nbdcopy runs ($nbd_dir: read or write) for --seconds; MiB/s
  local n=0 t0 t1
  t0=$(date +%s%N)
  while :; do
    if [ "$nbd_dir" = read ]; then
      timeout 120 nbdcopy --no-extents "$1" null: || return 1
    else
      timeout 120 nbdcopy --no-extents "$src_img" "$1" || return 1
    fi
    n=$((n + 1))
    t1=$(date +%s%N)
    [ $((t1 - t0)) -lt $((secs * 1000000000)) ] || break
  done
  python3 -c "print(round($n * $disk_mib * 1e9 / ($t1 - $t0), 1))"
}
ours_nbd() { nbd_mib_s "$ours_uri"; }
peer_nbd() { nbd_mib_s "$peer_uri"; }
# qemu-img bench: 4 KiB reads, 32 in flight, each 64 KiB past the last (spread over the disk,
# wrapping at its end), for about --seconds: thousands of I/Os per second.
iops_count=
iops_k() {  # URI
  local t
  t=$(timeout 120 qemu-img bench -f raw -d 32 -s 4096 -S 65536 -c "$iops_count" "$1" 2>&1 |
      sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p') || return 1
  [ -n "$t" ] || { echo "compare: qemu-img bench printed no time" >&2; return 1; }
  python3 -c "print(round($iops_count / $t / 1e3, 2))"
}
ours_iops() { iops_k "$ours_uri"; }
peer_iops() { iops_k "$peer_uri"; }
if want block; then
  bench_link_up
  head -c $((disk_mib << 20)) /dev/urandom >"$src_img"
  # qemu-nbd as vepf-host serves: persistent, any number of clients (it then offers multi-conn as
  # vepf-host does, so nbdcopy opens as many connections to each), through the page cache.
  qemu-nbd -f raw -t -e 0 --cache=writeback --aio=threads --socket="$work/qemu-nbd.sock" "$disk_img" \
    >"$work/qemu-nbd.log" 2>&1 &
  extra_pids="$extra_pids $!"
  wait_path "$work/qemu-nbd.sock" || { cat "$work/qemu-nbd.log"; echo "compare: qemu-nbd did not start" >&2; exit 1; }
  # As many I/Os as qemu-nbd does in about --seconds (a first run sizes it).
  iops_count=20000
  iops_count=$(python3 -c "print(max(2000, int($(peer_iops) * 1e3 * $secs)))")
  nbd_dir="read"
  pairs_of "NBD read, nbdcopy to null" "MiB/s" higher "≥ 1.2×" "qemu-nbd, same file" ours_nbd peer_nbd
  nbd_dir="write"
  pairs_of "NBD write, nbdcopy from a file" "MiB/s" higher "≥ 1.2×" "qemu-nbd, same file" ours_nbd peer_nbd
  pairs_of "NBD 4 KiB reads, queue depth 32" "kIOPS" higher "≥ 1.0×" "qemu-nbd, same file" ours_iops peer_iops
fi

if [ "$smoke" = 1 ]; then
  python3 "$top/scripts/bench/report.py" --smoke "$results" "$out"
else
  python3 "$top/scripts/bench/report.py" "$results" "$out"
fi
