#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/seed-*.

The input formats are described at the top of each tests/fuzz/<target>.cc; this script only
knows them well enough to build valid (and a few deliberately broken) starting points:
valid direct and indirect chains, loops, out-of-range heads/next/addresses, a full
handshake of the transport. Files the fuzzer found (other names) are left alone.

    python3 tests/fuzz/gen_corpus.py
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

NEXT, WRITE, INDIRECT = 1, 2, 4
EP, RC = 1, 2


def addr(win, off):
    return (win << 56) | off


def desc(a, length, flags=0, nxt=0):
    return struct.pack("<QIHH", a, length, flags, nxt)


def write(target, name, data, prefix="seed-"):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    assert len(data) < 4096, (target, name, len(data))
    with open(os.path.join(d, prefix + name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- vringh_fuzz
# cfg, nd, na, ni, avail_flags, avail_idx, used_event, descs, avail entries, indirect, ops
V_POP, V_COMPLETE, V_COMPLETE_RAW, V_NOTIFY_EN, V_NOTIFY_DIS, V_NEED, V_PENDING, V_BUMP, V_RAW, \
    V_AVAIL, V_IO, V_FILL = range(12)
IND_OFF = 0x2400
DATA = 0x4000  # free EP space for buffers
RC_DATA = 0x2000  # free RC space for buffers


def vringh(log2num, descs, avail, ind=(), idx=None, ops=b"", event_idx=False, indirect=False,
           floor=False, avail_flags=0, used_event=0, big=False):
    cfg = log2num | (0x10 if event_idx else 0) | (0x20 if indirect else 0) | (0x40 if floor else 0)
    cfg |= 0x80 if big else 0
    if idx is None:
        idx = len(avail)
    out = struct.pack("<BBBBHHH", cfg, len(descs), len(avail), len(ind), avail_flags, idx, used_event)
    out += b"".join(descs) + b"".join(struct.pack("<H", h) for h in avail) + b"".join(ind)
    return out + ops


def v_ops(*ops):
    return bytes(ops)


def complete(which, length):
    return bytes([V_COMPLETE, which]) + struct.pack("<I", length)


def gen_vringh():
    t = "vringh_fuzz"
    rd, wr = addr(EP, DATA), addr(RC, RC_DATA)
    serve = v_ops(V_POP) + complete(0, 16) + v_ops(V_NEED, V_NOTIFY_EN, V_PENDING)
    # One readable + one writable buffer, popped and completed.
    write(t, "direct-rw", vringh(3, [desc(rd, 64, NEXT, 1), desc(wr, 128, WRITE)], [0], ops=serve
                                 + bytes([V_IO, 0]) + struct.pack("<H", 200)))
    # Three chains, event idx, completions out of order, then the driver adds more.
    descs = [desc(rd + 0x100 * i, 32, NEXT if i % 2 == 0 else WRITE, i + 1) for i in range(6)]
    descs[5] = desc(wr, 32, WRITE)
    ops = v_ops(V_POP, V_POP, V_POP) + complete(2, 8) + complete(0, 0) + v_ops(V_NEED, V_NOTIFY_EN)
    ops += bytes([V_AVAIL, 3]) + struct.pack("<H", 4) + bytes([V_BUMP, 1, V_POP, V_PENDING])
    write(t, "event-idx-batch", vringh(3, descs, [0, 2, 4], ops=ops, event_idx=True, used_event=1))
    # Indirect table (in the indirect area) of a readable and two writable buffers.
    ind = [desc(rd, 100, NEXT, 1), desc(wr, 50, WRITE | NEXT, 2), desc(wr + 64, 50, WRITE)]
    write(t, "indirect", vringh(2, [desc(addr(EP, IND_OFF), 48, INDIRECT)], [0], ind=ind, ops=serve,
                                indirect=True))
    # Indirect rules: negotiated, not nested, 16-byte aligned, never with NEXT.
    write(t, "indirect-not-negotiated", vringh(2, [desc(addr(EP, IND_OFF), 16, INDIRECT)], [0],
                                               ind=[desc(rd, 8)], ops=serve))
    write(t, "indirect-nested", vringh(2, [desc(addr(EP, IND_OFF), 16, INDIRECT)], [0],
                                       ind=[desc(addr(EP, IND_OFF), 16, INDIRECT)], ops=serve, indirect=True))
    write(t, "indirect-misaligned", vringh(2, [desc(addr(EP, IND_OFF + 8), 16, INDIRECT)], [0],
                                           ind=[desc(rd, 8), desc(rd, 8)], ops=serve, indirect=True))
    # Loops: a -> b -> a in the main table, and a self loop in an indirect table.
    write(t, "loop", vringh(2, [desc(rd, 8, NEXT, 1), desc(rd, 8, NEXT, 0)], [0], ops=serve))
    write(t, "indirect-loop", vringh(1, [desc(addr(EP, IND_OFF), 64, INDIRECT)], [0],
                                     ind=[desc(rd, 8, NEXT, 1), desc(rd, 8, NEXT, 2), desc(rd, 8, NEXT, 3),
                                          desc(rd, 8, NEXT, 0)], ops=serve, indirect=True))
    # A chain of exactly num descriptors (not a loop).
    n = 16
    write(t, "chain-of-num", vringh(4, [desc(rd + 16 * i, 16, NEXT, i + 1) for i in range(n - 1)]
                                    + [desc(wr, 16, WRITE)], [0], ops=serve))
    # A buffer ending exactly at the window end (valid).
    write(t, "buffer-ends-at-window-end", vringh(2, [desc(addr(RC, 0x4000 - 16), 16, WRITE)], [0], ops=serve))
    # Boundaries (off-by-one bait): next == num, next == indirect table length, head == num,
    # a buffer one byte past the window end, zero bytes at the window end, the floor itself.
    # (A valid descriptor sits just past the 4-entry table, so reading it would go unnoticed.)
    past = bytes([V_RAW]) + struct.pack("<HB", 16 * 4, 16) + desc(rd, 8)
    write(t, "next-equals-num", vringh(2, [desc(rd, 8, NEXT, 4)] + [desc(rd, 8)] * 3, [0], ops=past + serve))
    write(t, "indirect-next-equals-len", vringh(2, [desc(addr(EP, IND_OFF), 32, INDIRECT)], [0],
                                                ind=[desc(rd, 8, NEXT, 2), desc(rd, 8), desc(rd, 8)], ops=serve,
                                                indirect=True))
    write(t, "avail-idx-num-plus-one", vringh(2, [desc(rd, 8)] * 4, [0, 1, 2, 3], idx=5, ops=serve))
    write(t, "indirect-with-next", vringh(2, [desc(addr(EP, IND_OFF), 16, INDIRECT | NEXT, 1), desc(rd, 8)], [0],
                                          ind=[desc(rd, 8)], ops=serve, indirect=True))
    write(t, "head-equals-num", vringh(2, [desc(rd, 8)] * 4, [4], ops=past + serve))
    write(t, "buffer-one-past-window", vringh(2, [desc(addr(RC, 0x4000 - 15), 16, WRITE)], [0], ops=serve))
    write(t, "zero-len-at-window-end", vringh(2, [desc(addr(EP, 0x8000), 0, NEXT, 1), desc(addr(RC, 0x4000), 0, WRITE)],
                                              [0], ops=serve))
    write(t, "floor-boundary", vringh(2, [desc(addr(EP, 0x1000), 8, NEXT, 1), desc(addr(EP, 0xfff), 1)], [0],
                                      ops=serve, floor=True))
    # Link addresses naming no window (0 is null), below the floor, and a readable buffer after
    # a writable one.
    write(t, "window-zero", vringh(2, [desc(0x1000, 8)], [0], ops=serve))
    write(t, "window-unknown", vringh(2, [desc(addr(0x7f, 0x1000), 8)], [0], ops=serve))
    write(t, "below-floor", vringh(2, [desc(addr(EP, 0x800), 8)], [0], ops=serve, floor=True))
    write(t, "read-after-write", vringh(2, [desc(wr, 8, WRITE | NEXT, 1), desc(rd, 8)], [0], ops=serve))
    # The avail ring wraps (mod num) many times.
    write(t, "wrap", vringh(0, [desc(rd, 8)], [0], idx=0, ops=(v_ops(V_BUMP, 1, V_POP) + complete(0, 1)) * 300))
    # A chain of more than 2^32 bytes (big EP window): an indirect table of 5000 descriptors of
    # 896 KiB each, filled by the fill op; the 4682nd crosses 2^32.
    big_fill = struct.pack("<BIHB", V_FILL, 0x10000, 5000, 1) + desc(addr(EP, 0x20000), 0xE0000, NEXT, 0)
    write(t, "over-4gib", vringh(1, [desc(addr(EP, 0x10000), 16 * 5000, INDIRECT)], [0], ops=big_fill + serve,
                                 indirect=True, big=True))
    # The same table, ending before 2^32 (4000 descriptors): a valid 3.4 GiB chain.
    fill = struct.pack("<BIHB", V_FILL, 0x10000, 4000, 1) + desc(addr(EP, 0x20000), 0xE0000, NEXT, 0)
    last = struct.pack("<BIHB", V_FILL, 0x10000 + 16 * 3999, 1, 0) + desc(addr(EP, 0x20000), 0xE0000, 0, 0)
    write(t, "big-chain", vringh(1, [desc(addr(EP, 0x10000), 16 * 4000, INDIRECT)], [0], ops=fill + last + serve,
                                 indirect=True, big=True))
    # Notification suppression without event idx.
    write(t, "no-interrupt-flag", vringh(1, [desc(rd, 8), desc(wr, 8, WRITE)], [0, 1], ops=v_ops(
        V_NOTIFY_DIS, V_POP, V_POP) + complete(0, 0) + complete(1, 8) + v_ops(V_NEED, V_NOTIFY_EN, V_PENDING),
        avail_flags=1))


# ------------------------------------------------------------ vring_used_fuzz
U_ADD, U_KICK, U_GET, U_ENABLE, U_DISABLE, U_IDX, U_IDX_ADD, U_ENTRY, U_EVENT, U_HONEST, U_HONEST_ANY, \
    U_REPLAY = range(12)


def u_add(nout, nin, *lens, many=False):
    assert len(lens) == nin
    return bytes([U_ADD, nout, nin, 1 if many else 0]) + b"".join(struct.pack("<I", x) for x in lens)


def honest(length):
    return bytes([U_HONEST]) + struct.pack("<I", length)


def honest_any(pick, length):
    return bytes([U_HONEST_ANY, pick]) + struct.pack("<I", length)


def entry(slot, ident, length):
    return bytes([U_ENTRY, slot]) + struct.pack("<II", ident, length)


def gen_vring_used():
    t = "vring_used_fuzz"

    def cfg(log2num, event_idx=False, pool=False, imax=3):
        return bytes([log2num | (0x10 if event_idx else 0) | (0x20 if pool else 0), imax])

    basic = u_add(1, 1, 100) + u_add(2, 0) + bytes([U_KICK]) + honest(50) + honest(0) + bytes([U_GET, U_GET, U_GET])
    write(t, "in-order", cfg(3) + basic + bytes([U_ENABLE]))
    write(t, "event-idx", cfg(3, event_idx=True) + bytes([U_EVENT]) + struct.pack("<HH", 0, 1) + basic
          + bytes([U_ENABLE, U_DISABLE]) + u_add(0, 1, 8) + bytes([U_KICK]))
    write(t, "indirect-pool", cfg(2, pool=True, imax=3) + u_add(1, 2, 10, 20) + u_add(3, 1, 5) + u_add(1, 0)
          + bytes([U_KICK]) + honest_any(1, 30) + honest_any(0, 5) + bytes([U_GET] * 4))
    write(t, "out-of-order", cfg(4) + u_add(1, 1, 64) * 5 + bytes([U_KICK]) + honest_any(3, 64) + honest_any(0, 1)
          + honest_any(1, 2) + bytes([U_GET] * 3) + u_add(2, 2, 7, 7) + bytes([U_KICK]) + honest_any(0, 3)
          + bytes([U_GET]))
    write(t, "fill-and-no-space", cfg(2) + u_add(1, 0) * 5 + bytes([U_KICK]) + honest(0) + bytes([U_GET])
          + u_add(1, 0) + u_add(0, 0) + u_add(0, 1, 1, many=True))
    write(t, "full-length-chain", cfg(3) + u_add(0, 0, many=True) + bytes([U_KICK]) + honest(0) + bytes([U_GET]))
    # Hostile device.
    write(t, "idx-too-far", cfg(3) + u_add(1, 0) + bytes([U_KICK, U_IDX]) + struct.pack("<H", 5) + bytes([U_GET, U_GET])
          + u_add(1, 0))
    write(t, "id-out-of-range", cfg(3) + u_add(1, 0) + bytes([U_KICK]) + entry(0, 9, 0)
          + bytes([U_IDX_ADD, 1, U_GET, U_ADD]))
    write(t, "id-not-in-flight", cfg(3) + u_add(1, 0) + u_add(1, 0) + bytes([U_KICK]) + entry(0, 5, 0)
          + bytes([U_IDX_ADD, 1, U_GET]))
    write(t, "len-too-long", cfg(3) + u_add(0, 1, 16) + bytes([U_KICK]) + entry(0, 0, 17) + bytes([U_IDX_ADD, 1, U_GET]))
    write(t, "returned-twice", cfg(3) + u_add(1, 1, 4) + u_add(1, 1, 4) + bytes([U_KICK]) + honest(4) + bytes([U_GET])
          + bytes([U_REPLAY, U_GET, U_GET]))
    # Boundaries: the used idx one past the chains in flight, id == num.
    write(t, "idx-one-too-far", cfg(3) + u_add(1, 0) + bytes([U_KICK]) + entry(0, 0, 0) + bytes([U_IDX_ADD, 2, U_GET]))
    write(t, "id-equals-num", cfg(3) + u_add(1, 0) + bytes([U_KICK]) + entry(0, 8, 0) + bytes([U_IDX_ADD, 1, U_GET]))
    # The free list after chains of two descriptors come back: refill the whole ring with singles.
    write(t, "free-list-reuse", cfg(3) + u_add(1, 1, 8) * 4 + bytes([U_KICK]) + honest_any(3, 1) + honest_any(1, 1)
          + honest_any(2, 1) + honest_any(0, 1) + bytes([U_GET] * 4) + u_add(1, 0) * 8 + bytes([U_KICK])
          + honest(0) * 8 + bytes([U_GET] * 8))
    # Notification suppression without event idx: the device sets NO_NOTIFY; enable_cb() sees
    # used entries that are already there.
    write(t, "flags", cfg(2) + bytes([U_EVENT]) + struct.pack("<HH", 1, 0) + u_add(1, 0) + bytes([U_KICK, U_DISABLE])
          + honest(0) + bytes([U_ENABLE, U_GET, U_ENABLE, U_EVENT]) + struct.pack("<HH", 0, 0) + u_add(1, 0)
          + bytes([U_KICK]))
    write(t, "wrap", cfg(0) + (u_add(0, 1, 2) + bytes([U_KICK]) + honest(1) + bytes([U_GET])) * 40)


# ------------------------------------------------------------- transport_fuzz
T_POLL, T_LINK, T_DEV, T_QUEUE, T_OFFER, T_RAW_EP, T_RAW_DRV, T_RAW_RC, T_LINK_DOWN, T_READD, T_CONFIG, \
    T_REPLAY, T_RAW_DRVLINE, T_RAW_QLINE = range(14)
S_ACK, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK, S_NEEDS_RESET, S_FAILED = 1, 2, 4, 8, 0x40, 0x80
OP_SET_STATUS, OP_QUEUE_ENABLE, OP_QUEUE_RESET = 1, 2, 3
F_V1, F_EVENT, F_IND = 1, 2, 4


def attach(size_sel=0):
    return bytes([T_LINK, 1, 0]) + struct.pack("<H", size_sel) + bytes([T_POLL])


def request(op, arg, fsel=F_V1):
    return bytes([T_DEV, op, arg, fsel, T_POLL])


def drv_addr(off, align=True):  # EP driver space, offset from its start
    return bytes([4 if align else 0]) + struct.pack("<H", off)


def rc_ring(off):
    return bytes([5]) + struct.pack("<H", off)


def queue_line(q, log2size, desc_off, avail_off, used):
    return bytes([T_QUEUE, q, log2size]) + drv_addr(desc_off) + drv_addr(avail_off) + used


def offer(q, head, a, length, flags, nxt=0):
    return bytes([T_OFFER, q, head]) + a + struct.pack("<H", length) + bytes([flags, nxt])


def handshake(fsel=F_V1 | F_EVENT | F_IND, queues=True):
    s = attach(0x3000)  # 16 KiB RC window
    s += request(OP_SET_STATUS, S_ACK) + request(OP_SET_STATUS, S_ACK | S_DRIVER)
    s += request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK, fsel)
    if queues:
        s += queue_line(0, 3, 0x0000, 0x0100, rc_ring(0x1000))
        s += queue_line(1, 3, 0x0200, 0x0300, rc_ring(0x1200))
        s += request(OP_QUEUE_ENABLE, 0) + request(OP_QUEUE_ENABLE, 1)
    s += request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK, fsel)
    return s


def gen_transport():
    t = "transport_fuzz"
    buf = drv_addr(0x1000, False)
    rcbuf = rc_ring(0x2000)
    h = handshake()
    write(t, "handshake", h)
    write(t, "echo", h + offer(0, 0, buf, 64, NEXT, 1) + offer(0, 1, rcbuf, 64, WRITE) + bytes([T_POLL])
          + offer(1, 0, buf, 16, 0) + bytes([T_POLL, T_CONFIG, T_POLL]))
    write(t, "broken-queue", h + offer(0, 0, bytes([3]) + struct.pack("<Q", 0x1000), 8, 0) + bytes([T_POLL])
          + offer(1, 0, buf, 8, 0) + bytes([T_POLL]) + request(OP_SET_STATUS, 0) + h)
    write(t, "reset-and-detach", h + request(OP_SET_STATUS, 0) + bytes([T_LINK, 2, 0, 0, 0, T_POLL]) + attach(0)
          + bytes([T_LINK_DOWN, T_POLL]))
    write(t, "readd-device", h + bytes([T_READD, T_POLL]) + handshake(queues=False))
    write(t, "bad-features", attach() + request(OP_SET_STATUS, S_ACK | S_DRIVER)
          + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK, F_V1 | 8)
          + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK, F_EVENT))
    write(t, "requests-before-attach", request(OP_SET_STATUS, S_ACK) + request(OP_QUEUE_ENABLE, 0) + attach()
          + request(OP_QUEUE_ENABLE, 0))
    write(t, "bad-attach", bytes([T_LINK, 1, 1]) + struct.pack("<I", 7) + struct.pack("<H", 0) + bytes([T_POLL])
          + bytes([T_LINK, 1, 2]) + struct.pack("<Q", 0x1234) + struct.pack("<H", 0) + bytes([T_POLL])
          + bytes([T_LINK, 1, 4]) + struct.pack("<Q", 0x100000) + bytes([T_POLL, T_LINK, 3, 0])
          + struct.pack("<I", 99) + struct.pack("<H", 0) + bytes([T_POLL]))
    write(t, "queue-in-control-region", attach() + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK)
          + bytes([T_QUEUE, 0, 3, 2, 0, 0x10, 2, 0, 0x20, 2, 0, 0x30]) + request(OP_QUEUE_ENABLE, 0)
          + queue_line(1, 9, 0, 0x100, rc_ring(0x3ffc)) + request(OP_QUEUE_ENABLE, 1)
          + request(OP_QUEUE_RESET, 0) + request(OP_QUEUE_ENABLE, 5))
    # The control region is never a buffer or a ring: a chain naming it breaks the queue, a used
    # ring on the device line is refused.
    write(t, "buffer-in-control-region", h + offer(0, 0, bytes([2]) + struct.pack("<H", 0x100), 64, WRITE)
          + bytes([T_POLL]))
    used_on_dev_line = bytes([6]) + struct.pack("<H", 0x100)
    write(t, "used-ring-on-device-line", attach(0x3000) + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK)
          + queue_line(0, 3, 0, 0x100, used_on_dev_line) + request(OP_QUEUE_ENABLE, 0)
          + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)
          + offer(0, 0, buf, 8, 0) + offer(0, 1, buf, 8, 0) + offer(0, 2, buf, 8, 0) + bytes([T_POLL]))
    write(t, "queue-size-not-power-of-2", attach(0x3000) + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK)
          + bytes([T_QUEUE, 0, 0x80]) + struct.pack("<H", 6) + drv_addr(0) + drv_addr(0x100) + rc_ring(0x1000)
          + request(OP_QUEUE_ENABLE, 0) + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)
          + bytes([T_POLL]))
    write(t, "raw-lines", h + bytes([T_RAW_DRVLINE, 4, 4]) + struct.pack("<I", 0xff) + bytes([T_REPLAY, T_POLL])
          + bytes([T_RAW_QLINE, 0, 0, 2]) + struct.pack("<H", 0x20) + bytes([T_RAW_EP]) + struct.pack("<H", 0)
          + bytes([4]) + b"XXXX" + bytes([T_RAW_RC]) + struct.pack("<H", 0) + bytes([4]) + b"abcd" + bytes([T_POLL]))
    # Findings (crash-*: they fail until the library is fixed; see the fuzz checks they trip).
    # [driver-ok-without-features-ok] (and then [notify-before-driver-ok]): one request sets
    # ACK|DRIVER|FEATURES_OK|DRIVER_OK with a feature bit the device does not offer; the device
    # refuses FEATURES_OK but keeps DRIVER_OK. As libFuzzer minimised it: the request, then an
    # attach, both handled by the final poll().
    write(t, "driver-ok-without-features-ok", bytes([T_DEV, OP_SET_STATUS, 0x0F, F_V1 | F_EVENT | F_IND | 8, T_LINK, 1]),
          prefix="crash-")
    # [notify-before-driver-ok]: FAILED while running: on_reset() is called, DRIVER_OK stays, and
    # the next poll() notifies the reset device.
    write(t, "notify-after-failed", h + request(OP_SET_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK | S_FAILED)
          + bytes([T_POLL]), prefix="crash-")


# ---------------------------------------------------------------- blk_request_fuzz
# cfg, max_seg, max_sectors, capacity, read_len, write_len, readable bytes
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13


def blk(cfg, read_len, write_len, readable, max_seg=16, max_sectors=1 << 20, capacity=2048):
    return struct.pack("<BBIQII", cfg, max_seg, max_sectors, capacity, read_len, write_len) + readable


def blk_hdr(t, sector):
    return struct.pack("<IIQ", t, 0, sector)


def gen_blk():
    t = "blk_request_fuzz"
    allf = 0x0E
    write(t, "read", blk(allf, 16, 4097, blk_hdr(T_IN, 8)))
    write(t, "write", blk(allf, 16 + 1024, 1, blk_hdr(T_OUT, 2046) + bytes(1024)))
    write(t, "write-read-only", blk(allf | 1, 16 + 512, 1, blk_hdr(T_OUT, 0) + bytes(512)))
    write(t, "read-past-end", blk(allf, 16, 1025, blk_hdr(T_IN, 2047)))
    write(t, "flush", blk(allf, 16, 1, blk_hdr(T_FLUSH, 0)))
    write(t, "get-id", blk(allf, 16, 21, blk_hdr(T_GET_ID, 0)))
    write(t, "discard", blk(allf, 48, 1, blk_hdr(T_DISCARD, 0) + struct.pack("<QII", 0, 8, 0)
                           + struct.pack("<QII", 100, 1948, 0)))
    write(t, "write-zeroes-unmap", blk(allf, 32, 1, blk_hdr(T_WZ, 0) + struct.pack("<QII", 2040, 8, 1)))
    write(t, "no-status", blk(allf, 16, 0, blk_hdr(T_IN, 0)))
    write(t, "unknown-type", blk(allf, 16, 1, blk_hdr(0x77, 0)))


# ---------------------------------------------------------------- console_control_fuzz
def console(max_ports, port, event, value, payload=b""):
    return bytes([max_ports]) + struct.pack("<IHH", port, event, value) + payload


def gen_console():
    t = "console_control_fuzz"
    write(t, "device-ready", console(4, 0, 0, 1))
    write(t, "port-add", console(4, 3, 1, 0))
    write(t, "port-ready", console(4, 1, 3, 1))
    write(t, "console-port", console(4, 0, 4, 1))
    write(t, "resize", console(4, 0, 5, 0, struct.pack("<HH", 80, 24)))
    write(t, "resize-short", console(4, 0, 5, 0, b"\x50"))
    write(t, "port-open", console(4, 2, 6, 1))
    write(t, "port-name", console(4, 1, 7, 1, b"org.vepf.shell\0"))
    write(t, "port-name-slash", console(4, 1, 7, 1, b"../x"))
    write(t, "id-out-of-range", console(2, 2, 1, 0))
    write(t, "unknown-event", console(4, 0, 8, 0))
    write(t, "truncated", console(4, 0, 1, 0)[:6])


# ---------------------------------------------------------------- rpmsg_channels_fuzz
NS_ADDR = 53
FIRST_DYNAMIC = 1024


def r_ns(name, addr, flags):  # op 2: a name-service message
    return bytes([2, len(name)]) + name + struct.pack("<II", addr, flags)


def r_msg(src, kind, dst, payload):  # op 1: a well-formed rpmsg; kind 0: ours, 1: NS, 2: raw dst
    return bytes([1]) + struct.pack("<IBIH", src, kind, dst, len(payload)) + payload


def r_raw(data):  # op 0: bytes as the peer left them
    return bytes([0]) + struct.pack("<H", len(data)) + data


def gen_rpmsg_channels():
    t = "rpmsg_channels_fuzz"
    ns_svc = 0x01 | 0x02  # name service, a local channel "svc"
    write(t, "create-deliver-destroy", bytes([ns_svc]) + r_ns(b"echo", 1030, 0) + r_msg(1030, 0, 0, b"hi")
          + bytes([7, 0]) + r_msg(1031, 2, FIRST_DYNAMIC + 1, b"to the client") + r_ns(b"echo", 1030, 1) + bytes([6]))
    write(t, "bad-names", bytes([0x01]) + r_ns(b"../x", 1030, 0) + r_ns(b"announce", 1031, 0) + r_ns(b"a/b", 1032, 0)
          + r_ns(b".", 1033, 0) + r_ns(b"x" * 32, 1034, 0) + r_ns(b"ok", NS_ADDR, 0) + r_ns(b"ok", 0xffffffff, 0))
    write(t, "no-name-service", bytes([0x02]) + r_ns(b"echo", 1030, 0) + r_msg(5, 0, 0, b"x"))
    write(t, "no-room-then-resume", bytes([0x01 | 0x02 | 0x04]) + r_ns(b"a", 1030, 0) + bytes([5]) + bytes([3])
          + bytes([4, 1]) + r_ns(b"a", 1040, 0))
    write(t, "malformed", bytes([0x01]) + r_raw(b"\x00" * 10) + r_raw(struct.pack("<IIIHH", 1, 53, 0, 600, 0))
          + r_raw(b""))
    write(t, "empty-payload-to-ours", bytes([ns_svc]) + r_msg(9, 0, 0, b"") + r_msg(9, 1, 0, b""))


# ---------------------------------------------------------------- rpmsg_relay_fuzz
def y_ns(name, addr, flags):  # the name-service message of ops 2 (peer) and 9 (application)
    return bytes([len(name)]) + name + struct.pack("<II", addr, flags)


def y_msg(src, dst, payload):  # op 1: a well-formed rpmsg from the peer
    return bytes([1]) + struct.pack("<IIH", src, dst, len(payload)) + payload


def y_frame(data):  # op 8: raw bytes from the application
    return bytes([8]) + struct.pack("<H", len(data)) + data


def gen_rpmsg_relay():
    t = "rpmsg_relay_fuzz"
    up_ns_app = 0x01 | 0x02 | 0x04
    hdr = struct.pack("<IIIHH", 1024, 1030, 0, 2, 0)
    write(t, "both-ways", bytes([up_ns_app]) + bytes([2]) + y_ns(b"echo", 1030, 0) + y_msg(1030, 1024, b"hi")
          + y_frame(b"\x01" + hdr + b"yo") + bytes([10]) + bytes([9]) + y_ns(b"mine", 1024, 0) + bytes([7, 0])
          + bytes([7, 1, 10]))
    write(t, "late-application", bytes([0x01 | 0x02]) + bytes([2]) + y_ns(b"a", 1030, 0) + bytes([2])
          + y_ns(b"b", 1031, 0) + bytes([2]) + y_ns(b"a", 1030, 1) + bytes([7, 1, 10, 7, 1, 10]))
    write(t, "bad-frames", bytes([up_ns_app]) + y_frame(b"\x02\x01") + bytes([7, 1]) + y_frame(b"\x01short")
          + bytes([7, 1]) + y_frame(b"\x01" * 600) + bytes([7, 1]) + y_frame(b"\x01" + struct.pack("<IIIHH", 1, 2, 0, 400, 0)))
    write(t, "no-room", bytes([up_ns_app | 0x08]) + y_frame(b"\x01" + hdr + b"yo") + bytes([6, 5, 6])
          + bytes([3, 10, 4, 1, 10]))
    write(t, "malformed-peer", bytes([up_ns_app]) + bytes([0]) + struct.pack("<H", 10) + b"\x00" * 10
          + bytes([0]) + struct.pack("<H", 16) + struct.pack("<IIIHH", 1, 53, 0, 600, 0) + bytes([10]))


# ---------------------------------------------------------------- rpmsg_device_fuzz
def p_tx(src, dst, hdr_len, payload, buf_len=None):  # op 0: one allocated buffer holding an rpmsg
    n = buf_len if buf_len is not None else 16 + len(payload)
    return bytes([0, 0, 0]) + struct.pack("<HIIHB", n - 1, src, dst, hdr_len, len(payload)) + payload


def p_rx(size, count=1):  # op 1: receive buffers of `size` bytes, one allocated segment each
    return (bytes([1, 0, 0]) + struct.pack("<H", size - 1)) * count


def p_app(unnamed, dst, length):  # op 2: the application sends
    return bytes([2, 1 if unnamed else 0]) + struct.pack("<IH", dst, length)


def gen_rpmsg_device():
    t = "rpmsg_device_fuzz"
    ns_evt = 0x01 | 0x02
    ns_create = b"svc".ljust(32, b"\0") + struct.pack("<II", 1030, 0)
    write(t, "echo", bytes([ns_evt]) + p_rx(512, 4) + p_tx(1030, 1024, 5, b"hello") + bytes([5, 4])
          + p_tx(1030, 2000, 3, b"abc") + bytes([4]))
    write(t, "name-service", bytes([ns_evt]) + p_rx(512, 2) + p_tx(1030, NS_ADDR, 40, ns_create)
          + p_app(False, 1030, 8) + bytes([5, 4]) + p_tx(1030, NS_ADDR, 40, ns_create[:32] + struct.pack("<II", 1030, 1)))
    write(t, "lying-lengths", bytes([ns_evt]) + p_rx(512) + p_tx(1030, 1024, 400, b"short") + p_tx(1030, 1024, 2, b"longer than two")
          + p_tx(1, 2, 0, b"", buf_len=8) + p_tx(1, 2, 0, b"", buf_len=600) + bytes([4]))
    write(t, "small-receive-buffers", bytes([0x02]) + p_rx(8, 3) + p_app(True, 1030, 100) + p_app(False, 1030, 496)
          + bytes([5, 4]))
    write(t, "reset-then-again", bytes([ns_evt | 0x04]) + p_rx(512, 2) + p_tx(1030, 1024, 1, b"x") + bytes([6])
          + p_rx(512) + p_tx(1030, 1024, 1, b"y") + bytes([3]) + struct.pack("<II", 0, 0xffffffff) + bytes([5, 4]))


# ---------------------------------------------------------------- blk_device_fuzz
# ops: 0 request, 1 scribble, 2 take used, 3 doorbell, 4 completions (u8: bit 0 waits), 5 reset.
# Request types by index: 0 IN, 1 OUT, 2 FLUSH, 3 GET_ID, 4 DISCARD, 5 WRITE_ZEROES,
# 6 SECURE_ERASE, 7 raw u32.
def b_place(length, how=0):  # rogue_driver.hpp place(): allocated (how 0) `length` bytes
    return bytes([how]) + struct.pack("<H", length - 1)


def b_sector(v, mode=0):  # 0: u16 (mod the sector count), 1: the last sectors, 2: raw u64
    if mode == 0:
        return bytes([0]) + struct.pack("<H", v)
    if mode == 1:
        return bytes([1, v])
    return bytes([2]) + struct.pack("<Q", v)


def b_seg(sector, sectors, flags=0):  # a DISCARD / WRITE_ZEROES segment
    return b_sector(sector) + struct.pack("<HB", sectors, flags)


def b_req(kind, sector, readable=(), segs=(), writable=(1,), raw=None):
    r = bytes([0]) + b_place(16) + bytes([kind]) + (struct.pack("<I", raw) if kind == 7 else b"") + sector
    r += bytes([len(readable)])
    for i, n in enumerate(readable):
        r += b_place(n) + (bytes([len(segs)]) + b"".join(segs) if i == 0 else b"")
    return r + bytes([len(writable)]) + b"".join(b_place(n) for n in writable)


def gen_blk_device():
    t = "blk_device_fuzz"
    settle = bytes([4, 1, 4, 1, 4, 1, 2])
    write(t, "write-read-flush", bytes([0x01]) + b_req(1, b_sector(0), readable=[4096]) + settle
          + b_req(0, b_sector(0), writable=[4096, 1]) + b_req(2, b_sector(0)) + settle)
    write(t, "discard-write-zeroes", bytes([0x00]) + b_req(4, b_sector(0), readable=[16], segs=[b_seg(8, 8)])
          + b_req(5, b_sector(0), readable=[32], segs=[b_seg(16, 8, 1), b_seg(500, 64)]) + settle)
    write(t, "get-id-and-unknown", bytes([0x01]) + b_req(3, b_sector(0), writable=[20, 1])
          + b_req(7, b_sector(0), writable=[64], raw=0x1234) + b_req(6, b_sector(0), readable=[16], segs=[b_seg(0, 1)])
          + settle)
    write(t, "out-of-range", bytes([0x00]) + b_req(0, b_sector(0, 1), writable=[4096, 1])
          + b_req(1, b_sector(1 << 62, 2), readable=[512]) + b_req(5, b_sector(0), readable=[16], segs=[b_seg(510, 0xffff)])
          + settle)
    write(t, "read-only", bytes([0x04]) + b_req(1, b_sector(0), readable=[512]) + b_req(4, b_sector(0), readable=[16], segs=[b_seg(0, 8)])
          + b_req(0, b_sector(0), writable=[512, 1]) + settle)
    write(t, "reset-in-flight", bytes([0x02]) + b_req(1, b_sector(4), readable=[4096]) + bytes([5])
          + b_req(0, b_sector(4), writable=[4096, 1]) + settle)
    write(t, "no-status-room", bytes([0x08]) + b_req(0, b_sector(0), writable=()) + bytes([1]) + struct.pack("<II", 0, 7)
          + bytes([3]) + settle)


# ---------------------------------------------------------------- blk_driver_fuzz
# header: feat (0 RO, 1 FLUSH, 2 DISCARD, 3 WRITE_ZEROES, 4 BLK_SIZE, 5 EVENT_IDX, 6 SEG_MAX), cap
# (3: 1 MiB), u32 blk_size, u32 max_discard_sectors, u32 max_write_zeroes_sectors, u8 queue size - 3.
# ops: 0 answer one, 1 answer all, 2 RC word, 3 read, 4 write, 5 flush/trim/zeroes, 6 interrupt,
# 7 NEEDS_RESET.
def k_hdr(feat=0x3e, cap=3, blk=4096, discard=8192, wz=8192, q=64):
    return bytes([feat, cap]) + struct.pack("<III", blk, discard, wz) + bytes([q - 3])


def k_off(v, mode=0):
    if mode == 0:
        return bytes([0]) + struct.pack("<H", v)
    if mode == 1:
        return bytes([1, v])
    return bytes([2]) + struct.pack("<Q", v)


def k_read(sector, sectors, mode=0):
    return bytes([3]) + k_off(sector, mode) + struct.pack("<H", sectors)


def k_write(sector, sectors, fua=False, lend=True, mode=0):
    return bytes([4]) + k_off(sector, mode) + struct.pack("<HB", sectors, (1 if fua else 0) | (2 if lend else 0))


def k_other(which, sector=0, sectors=0):
    return bytes([5, which]) + k_off(sector) + struct.pack("<H", sectors)


def gen_blk_driver():
    t = "blk_driver_fuzz"
    ok = bytes([1, 0, 6])
    write(t, "read-write-flush", k_hdr() + k_read(0, 8) + k_write(8, 256) + k_write(300, 7, lend=False) + ok
          + k_other(0) + ok + ok)
    write(t, "fua-and-errors", k_hdr() + k_write(0, 256, fua=True) + bytes([0, 1]) + struct.pack("<HB", 0, 0)
          + bytes([6]) + k_write(0, 8, fua=True) + ok + bytes([1, 2, 6]) + ok)
    write(t, "lying-device", k_hdr(q=8) + k_read(0, 16) + k_write(0, 16) + bytes([0, 0]) + struct.pack("<HB", 600, 1)
          + struct.pack("<I", 0xffffffff) + bytes([6, 2]) + struct.pack("<II", 0, 0x7fff0000) + bytes([6]) + ok)
    write(t, "needs-reset-in-flight", k_hdr(q=16) + k_write(0, 256) + k_write(256, 256) + k_read(0, 8) + bytes([7])
          + k_write(0, 256) + ok)
    write(t, "read-only-and-tiny", k_hdr(feat=0x01, cap=1) + k_write(0, 1) + k_read(0, 1) + k_read(0, 2) + k_read(0, 1, mode=1)
          + k_read(1 << 60, 1, mode=2) + ok)
    write(t, "trim-and-zeroes", k_hdr(discard=0, wz=3) + k_other(1, 3, 100) + k_other(2, 0, 9) + k_other(2, 1, 0)
          + ok + ok)


# ---------------------------------------------------------------- rpmsg_driver_fuzz
# ops: 0 the device fills a receive buffer, 1 it completes transmit chains, 2 RC word, 3 the
# application sends, 4 interrupt, 5 NEEDS_RESET, 6 destroy the bound endpoint.
def r_fill(src, dst_sel, hdr_len, kind, payload=b"", ns=None, claim=None, dst=0):
    m = bytes([0]) + struct.pack("<I", src) + bytes([dst_sel]) + (struct.pack("<I", dst) if dst_sel == 3 else b"")
    m += struct.pack("<H", hdr_len) + bytes([kind])
    if kind == 0:
        m += bytes([len(payload)]) + payload
    elif kind == 1:
        name, addr, flags = ns
        m += bytes([len(name)]) + name + struct.pack("<II", addr, flags)
    return m + (bytes([1]) + struct.pack("<I", claim) if claim is not None else bytes([0]))


def gen_rpmsg_driver():
    t = "rpmsg_driver_fuzz"
    done_tx = bytes([1]) + struct.pack("<I", 0)
    write(t, "echo", bytes([0x03]) + r_fill(1030, 0, 5, 0, b"hello") + bytes([4]) + done_tx + bytes([4]))
    write(t, "name-service", bytes([0x03]) + r_fill(1030, 1, 40, 1, ns=(b"svc", 1030, 0)) + bytes([4])
          + bytes([3, 1]) + struct.pack("<IH", 1030, 8) + bytes([4]) + done_tx
          + r_fill(1030, 2, 3, 0, b"abc") + bytes([4]) + r_fill(1030, 1, 40, 1, ns=(b"svc", 1030, 1)) + bytes([4, 6]))
    write(t, "lying-lengths", bytes([0x01]) + r_fill(1030, 0, 400, 0, b"short") + r_fill(1030, 0, 2, 0, b"longer than two")
          + r_fill(1, 2, 0, 2, claim=0xffffffff) + r_fill(1, 0, 0, 2, claim=8) + bytes([4]))
    write(t, "no-name-service", bytes([0x02]) + r_fill(1030, 1, 40, 1, ns=(b"x" * 32, 0xffffffff, 7)) + bytes([4])
          + bytes([3, 0]) + struct.pack("<IH", 77, 496) + done_tx)
    write(t, "reset-then-again", bytes([0x07]) + r_fill(1030, 0, 1, 0, b"x") + bytes([5]) + r_fill(1030, 0, 1, 0, b"y")
          + bytes([2]) + struct.pack("<II", 0, 0xffffffff) + bytes([4]))


# ---------------------------------------------------------------- driver_transport_fuzz
# ops: 0 attach, 1 scan, 2 negotiate, 3 enable_queue, 4 driver_ok, 5 reset, 6 set_status,
# 7/8 read_config(_wait), 9 looks, 10 epoch_changed, 11 EP word, 12 mailbox word.
# While a request waits: hook action 0 (answer: result, value), 1 (EP word), 2 (give up).
def d_answer(result=0, value=0):
    return bytes([0]) + struct.pack("<II", result, value)


def gen_driver_transport():
    t = "driver_transport_fuzz"
    first = 0x80  # slot argument: the first device scan() saw
    attach = bytes([0]) + d_answer()
    write(t, "attach-scan-negotiate", bytes([0]) + attach + bytes([1])
          + bytes([2, first]) + struct.pack("<IIII", 0xffffffff, 1, 0xffffffff, 1)
          + d_answer(0, 1) + d_answer(0, 3) + d_answer(0, 0xb)
          + bytes([3, first, 0]) + struct.pack("<HIII", 8, 0xb000, 0xb100, 0x1000) + d_answer()
          + bytes([4, first]) + d_answer(0, 0xf) + bytes([7, first]) + struct.pack("<H", 16) + bytes([1]))
    write(t, "refusals", bytes([1]) + attach + bytes([1]) + bytes([6, first, 1]) + d_answer(1, 0)
          + bytes([5, first]) + d_answer(0, 1) + bytes([4, 3]) + bytes([2])
          + bytes([3, first, 16]) + struct.pack("<HIII", 3, 0, 0, 0) + d_answer(2, 0))
    write(t, "epoch-gone", bytes([0]) + attach + bytes([11]) + struct.pack("<II", 8, 0x12345678)
          + bytes([10, 5, first, 6, 0, 1]) + attach)
    write(t, "odd-generation", bytes([0]) + attach + bytes([1]) + bytes([11]) + struct.pack("<II", 0x10000, 1)
          + bytes([7, first]) + struct.pack("<H", 300) + bytes([0]) + bytes([8, first]) + struct.pack("<H", 8) + bytes([1, 1]))
    write(t, "bad-header", bytes([0, 11]) + struct.pack("<II", 0, 0) + bytes([0, 11]) + struct.pack("<II", 4, 0xffff)
          + bytes([0, 9, 0, 12]) + struct.pack("<HI", 4, 7) + bytes([9, 0]))


# ---------------------------------------------------------------- loopback_hello_fuzz
# side (0: vepf-ep takes a host's hello, 1: vepf-host takes an EP's), fix bits (1 magic, 2 version,
# 4 role, 8 window_size), 16 hello bytes, len, nfds, (kind, size selector) each, after.
# Kinds: 0 sealed memfd, 1 unsealed memfd, 2 shrunk memfd, 3 eventfd, 4 pipe, 5 /dev/null,
# 6 socket, 7 O_PATH directory. Size selector 0: 64 KiB.
def hello(side, fds, fix=0x0f, raw=bytes(16), length=0, after=0):
    return bytes([side, fix]) + raw + bytes([length, len(fds)]) + b"".join(bytes(f) for f in fds) + bytes([after])


def gen_loopback_hello():
    t = "loopback_hello_fuzz"
    ev = (3, 0)
    write(t, "host-valid", hello(0, [(0, 0), ev]))
    write(t, "ep-valid", hello(1, [(0, 0)] + [ev] * 17))
    write(t, "host-valid-twice", hello(0, [(0, 1), ev], after=2))
    write(t, "host-closes-before-the-answer", hello(0, [(0, 0), ev], after=1))
    write(t, "host-shrunk-window-and-pipe", hello(0, [(2, 0), (4, 0)]))
    write(t, "ep-unsealed-window", hello(1, [(1, 0)] + [ev] * 17))
    write(t, "ep-one-doorbell-a-socket", hello(1, [(0, 0)] + [ev] * 16 + [(6, 0)]))
    write(t, "host-short-hello", hello(0, [(0, 0), ev], length=7))
    write(t, "ep-too-many", hello(1, [(0, 0)] + [ev] * 22))
    write(t, "host-odd-size", hello(0, [(0, 4), ev]))
    write(t, "host-raw-fields", hello(0, [(0, 0), (5, 0)], fix=0, raw=struct.pack("<IHHQ", 0x4c504556, 2, 1, 65536)))


# ---------------------------------------------------------------- nbd_server_fuzz
# cfg (bit 0 deferred, bit 1 read-only, bits 4-5 max_clients - 1, bit 6 small budget), then ops:
# 0 connect, 1 send (client, u16 len, bytes), 2 read (client, u16 max), 3 shutdown (client),
# 4 close (client), 5 loop turns (n), 6 complete (bit 0 all). Client conversations come from the
# NbdSession seeds (a config byte, then what a client sends).
def n_send(client, data):
    out = b""
    for i in range(0, len(data), 2047):
        part = data[i:i + 2047]
        out += bytes([1, client]) + struct.pack("<H", len(part)) + part
    return out


def n_read(client):
    return bytes([2, client]) + struct.pack("<H", 0xffff)


def n_turns(n=7):
    return bytes([5, n])


def gen_nbd_server():
    t = "nbd_server_fuzz"
    sessions = os.path.join(HERE, "corpus", "nbd_session_fuzz")
    for name in ("seed-go-read", "seed-structured-io", "seed-deferred-many", "seed-errors"):
        with open(os.path.join(sessions, name), "rb") as f:
            conv = f.read()
        cfg = (conv[0] & 1) | ((conv[0] >> 1) & 2) | (1 << 4)  # deferred, read-only; 2 clients
        ops = bytes([0]) + n_turns() + n_send(0, conv[1:]) + n_turns() + n_read(0) + bytes([6, 1]) + n_turns() + n_read(0)
        ops += bytes([0]) + n_turns() + n_send(1, conv[1:]) + bytes([4, 1]) + n_turns() + bytes([6, 1]) + n_turns()
        if len(ops) + 1 < 4096:
            write(t, name[len("seed-"):], bytes([cfg]) + ops)
    with open(os.path.join(sessions, "seed-go-read"), "rb") as f:
        conv = f.read()[1:]
    # One client allowed, three come; the first vanishes with requests in flight (deferred).
    write(t, "refused-and-vanished", bytes([0x01]) + bytes([0, 0, 0]) + n_turns() + n_send(0, conv) + n_turns()
          + bytes([4, 0]) + n_turns() + bytes([6, 1]) + bytes([0]) + n_turns() + n_send(0, conv) + n_turns() + n_read(0))
    # A client that never reads its replies, then shuts down its side.
    write(t, "never-reads", bytes([0x40]) + bytes([0]) + n_turns() + n_send(0, conv) + n_send(0, conv[-200:] * 8)
          + n_turns() + bytes([3, 0]) + n_turns())


# ---------------------------------------------------------------- net_device_fuzz
# cfg (bits 0-5 CSUM, GUEST_CSUM, HOST_TSO4, HOST_TSO6, GUEST_TSO4, GUEST_TSO6; bit 6 vectored
# backend; bit 7 queues of 4), then ops: 0 transmit (segments, (place, u16 len) each, 12 header
# bytes), 1 receive buffer (segments, (place, u16 len) each), 2 backend frame (u16 len, 12 header
# bytes), 3 EP word (u32 off, u32 value), 4 take used, 5 doorbell, 6 reset and bring up again.
def nd_tx(segs, hdr=bytes(12)):
    return bytes([0, len(segs) - 1]) + b"".join(bytes([p]) + struct.pack("<H", n - 1) for p, n in segs) + hdr


def nd_rx(segs):
    return bytes([1, len(segs) - 1]) + b"".join(bytes([p]) + struct.pack("<H", n - 1) for p, n in segs)


def nd_frame(n, hdr=bytes(12)):
    return bytes([2]) + struct.pack("<H", n) + hdr


def net_hdr(flags=0, gso=0, hdr_len=0, gso_size=0, start=0, off=0):
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, start, off, 0)


def gen_net_device():
    t = "net_device_fuzz"
    offl = 0x3f
    write(t, "traffic-both-ways", bytes([offl]) + nd_rx([(0, 2048)]) + nd_tx([(0, 100)]) + nd_frame(60) + bytes([4, 5])
          + nd_tx([(0, 12), (0, 60)]) + nd_rx([(0, 12), (0, 1500)]) + nd_frame(1400, net_hdr(1, 0, 0, 0, 34, 16)) + bytes([4]))
    write(t, "bad-headers", bytes([0x05]) + nd_tx([(0, 80)], net_hdr(1, 0, 0, 0, 70, 16))
          + nd_tx([(0, 80)], net_hdr(1, 3, 54, 1400, 34, 6)) + nd_tx([(0, 200)], net_hdr(2)) + nd_rx([(0, 100)])
          + nd_frame(90, net_hdr(1, 1, 54, 0, 34, 16)) + bytes([4]))
    write(t, "wild-addresses", bytes([0x01]) + bytes([0, 1, 1]) + struct.pack("<H", 99) + struct.pack("<Q", 0xfffffffffffff000)
          + bytes([2]) + struct.pack("<H", 4000) + bytes(12) + nd_rx([(2, 4000)]) + bytes([1, 0, 1]) + struct.pack("<H", 7)
          + struct.pack("<Q", (2 << 56) | 0x3ffffc) + nd_frame(60) + bytes([4]))
    write(t, "scribble-and-reset", bytes([0x87]) + nd_rx([(0, 2048)]) + bytes([3]) + struct.pack("<II", 0x1000, 0xffff0001)
          + bytes([5]) + nd_tx([(0, 64)]) + bytes([6]) + nd_rx([(0, 2048)]) + nd_frame(64) + bytes([4]))
    write(t, "small-queue-overflow", bytes([0xc0]) + nd_rx([(0, 256)]) * 6 + nd_frame(60) * 8 + bytes([4]) + nd_tx([(0, 64)]) * 6)


# ---------------------------------------------------------------- net_driver_fuzz
# feat (bits 0-7: CSUM, GUEST_CSUM, HOST_TSO4, HOST_TSO6, GUEST_TSO4, GUEST_TSO6, MTU, STATUS),
# u16 mtu, u16 status, then ops: 0 fill a receive buffer (12 header bytes, u16 len, u8 claim[, u32]),
# 1 complete transmit chains (u32 length each), 2 RC word (u32 off, u32 value), 3 backend frame
# (u16 len), 4 interrupt, 5 DEVICE_NEEDS_RESET and probe again.
def dv_rx(n, hdr=bytes(12), claim=None):
    return bytes([0]) + hdr + struct.pack("<H", n) + (bytes([0]) if claim is None else bytes([1]) + struct.pack("<I", claim))


def gen_net_driver():
    t = "net_driver_fuzz"
    head = bytes([0xff]) + struct.pack("<HH", 1500, 1)
    write(t, "traffic", head + bytes([4]) + dv_rx(60) + bytes([4, 3]) + struct.pack("<H", 100) + bytes([1])
          + struct.pack("<I", 0) * 4 + bytes([4]) + dv_rx(1400, net_hdr(1, 0, 0, 0, 34, 16)) + bytes([4]))
    write(t, "bad-headers-and-lengths", head + dv_rx(60, net_hdr(1, 0, 0, 0, 70, 16)) + dv_rx(60, net_hdr(0x80))
          + dv_rx(60, claim=4) + dv_rx(60, claim=0xffffffff) + dv_rx(90, net_hdr(1, 3, 54, 1400, 34, 6)) + bytes([4]))
    write(t, "scribble-and-reset", bytes([0x03]) + struct.pack("<HH", 9000, 0) + dv_rx(60) + bytes([2])
          + struct.pack("<II", 0x1000, 0xffffffff) + bytes([4, 5]) + dv_rx(60) + bytes([4]))
    write(t, "odd-config", bytes([0xc0]) + struct.pack("<HH", 0, 0xffff) + bytes([4, 3]) + struct.pack("<H", 1400)
          + bytes([1]) + struct.pack("<I", 70000) + bytes([4]))


# ---------------------------------------------------------------- control_fuzz
# Requests separated by NUL bytes; "@DIR@" is the scratch directory the board config allows.
def gen_control():
    t = "control_fuzz"

    def reqs(*rs):
        return b"\0".join(r.encode() for r in rs)

    def add(toml):
        import json
        return json.dumps({"op": "add", "device": toml})

    rpmsg = 'type = "rpmsg"\nqueue_size = 16\nrpmsg = { runtime_dir = "@DIR@/r%d" }'
    write(t, "list", reqs('{"op":"list"}'))
    write(t, "add-list-remove", reqs(add(rpmsg % 0), '{"op":"list"}', '{"op":"remove","slot":0}', '{"op":"list"}'))
    write(t, "add-block", reqs(add('type = "block"\nblock = { path = "@DIR@/disk.img", size = 1048576, '
                                   'nbd_socket = "@DIR@/b.sock" }'), '{"op":"list"}'))
    write(t, "add-console-socket", reqs(add('type = "console"\n[console]\nhost_dir = "@DIR@/c"\n'
                                            '[[console.port]]\nname = "p"\nbackend = "socket"\n'
                                            'socket = "@DIR@/c.sock"'), '{"op":"remove","slot":0}'))
    write(t, "outside-allowed-dirs", reqs(add('type = "rpmsg"\nrpmsg = { runtime_dir = "/run/vepf/x" }')))
    write(t, "remove-2^32", reqs(add(rpmsg % 1), '{"op":"remove","slot":4294967296}', '{"op":"list"}'))
    write(t, "bad", reqs('[]', '{"op":7}', '{"op":"add"}', '{"op":"add","device":"type = 3"}',
                         '{"op":"remove","slot":-1}', '{"op":"reboot"}', 'not json'))


# ---------------------------------------------------------------- console_device_fuzz, console_driver_fuzz
# A control message (console_fuzz.hpp): u8 id mode (port, or 3 + raw u32), u8 event (8: raw u16),
# u16 value, u8 payload kind (0 name: u8 n + bytes, 1 size: u16 cols, u16 rows, 2 none).
# Events: 0 DEVICE_READY, 1 PORT_ADD, 2 PORT_REMOVE, 3 PORT_READY, 4 CONSOLE_PORT, 5 RESIZE,
# 6 PORT_OPEN, 7 PORT_NAME.
def cm(port, event, value=0, name=None, size=None, raw_id=None):
    m = bytes([3]) + struct.pack("<I", raw_id) if raw_id is not None else bytes([port])
    m += bytes([event]) if event < 8 else bytes([8]) + struct.pack("<H", event)
    m += struct.pack("<H", value)
    if name is not None:
        return m + bytes([0, len(name)]) + name
    if size is not None:
        return m + bytes([1]) + struct.pack("<HH", *size)
    return m + bytes([2])


# console_device_fuzz: cfg (0 MULTIPORT, 1 EVENT_IDX, 2 F_SIZE, 3 driver size, 4 queues of 4), then
# ops: 0 control (place, message, u8 extra buffers), 1 writable buffers (u8 queue, u8 n - 1,
# places), 2 transmit (u8 port, u8 n - 1, places), 3 EP word, 4 take used, 5 doorbell, 6 loop,
# 7 backends (u8: 0 connect, 1 client writes u16, 2 client reads, 3 hang up, 4 pty writes u16,
# 5 pty reads), 8 reset.
def c_place(length, how=0):
    return bytes([how]) + struct.pack("<H", length - 1)


def c_ctl(msg, length=128, extra=()):
    return bytes([0]) + c_place(length) + msg + bytes([len(extra)]) + b"".join(extra)


def c_bufs(q, *lengths):
    return bytes([1, q, len(lengths) - 1]) + b"".join(c_place(n) for n in lengths)


def c_tx(port, *places):
    return bytes([2, port, len(places) - 1]) + b"".join(places)


def gen_console_device():
    t = "console_device_fuzz"
    ctrl_rx = c_bufs(2, 128, 128, 128, 128)
    ports = c_bufs(0, 1024) + c_bufs(4, 1024)
    up = ctrl_rx + ports + c_ctl(cm(0, 0, 1)) + bytes([4]) + ctrl_rx + c_ctl(cm(0, 3, 1)) + c_ctl(cm(1, 3, 1)) \
        + bytes([4]) + ctrl_rx + c_ctl(cm(0, 6, 1)) + c_ctl(cm(1, 6, 1)) + bytes([4])
    write(t, "multiport-session", bytes([0x0f]) + up + bytes([6, 7, 0, 7, 1]) + struct.pack("<H", 100)
          + bytes([7, 4]) + struct.pack("<H", 50) + bytes([6, 4]) + c_tx(0, c_place(64)) + c_tx(1, c_place(32), c_place(32))
          + bytes([6, 7, 2, 7, 5]) + c_ctl(cm(0, 5, 0, size=(120, 40))) + bytes([4, 7, 3, 6]) + ctrl_rx + bytes([4]))
    write(t, "no-multiport", bytes([0x02]) + c_bufs(0, 1024, 16) + bytes([7, 4]) + struct.pack("<H", 300) + bytes([6, 4])
          + c_tx(0, c_place(100)) + bytes([6, 7, 5, 4]) + c_ctl(cm(0, 0, 1)) + bytes([4]))
    write(t, "hostile-control", bytes([0x01]) + ctrl_rx + c_ctl(cm(0, 0, 1)) + c_ctl(cm(0, 0, 1))
          + c_ctl(cm(0, 3, 1, raw_id=0xffffffff)) + c_ctl(cm(0, 99)) + c_ctl(cm(1, 7, 1, name=b"x" * 79))
          + c_ctl(cm(0, 3, 1), length=4) + c_ctl(cm(0, 5, 0, size=(1, 1))) + c_ctl(cm(1, 1, 0)) + bytes([4])
          + (c_ctl(cm(1, 3, 1)) + c_ctl(cm(1, 3, 0))) * 12 + bytes([4]) + ctrl_rx + bytes([4])
          + bytes([0, 1]) + struct.pack("<HQ", 7, 0xfffffffffffff000) + cm(0, 3) + bytes([0, 4]))
    write(t, "small-control-buffers", bytes([0x09]) + c_bufs(2, 8, 8, 12, 4) + c_ctl(cm(0, 0, 1))
          + c_ctl(cm(1, 3, 1)) + bytes([4]) + c_bufs(2, 12, 16) + bytes([4]))
    write(t, "reset-and-scribble", bytes([0x13]) + up + bytes([7, 0, 7, 1]) + struct.pack("<H", 2000) + bytes([6])
          + bytes([3]) + struct.pack("<II", 0x40, 0xffff0007) + bytes([5, 4, 8]) + up + bytes([7, 1]) + struct.pack("<H", 10)
          + bytes([6, 4]) + c_tx(1, c_place(4000), c_place(9, 2)) + bytes([6, 4]))


# console_driver_fuzz: cfg (0 MULTIPORT, 1 EVENT_IDX, 2 F_SIZE, 3 driver size, 4 queues of 4, 5 raw
# max_nr_ports), u8 ports - 1, [u32 max_nr_ports], u16 cols, u16 rows, then ops: 0 control message
# (+ u8 claim), 1 port data (u8 port, u16 n, u8 claim), 2 complete chains (u8 which: ports = the
# control transmitq, u32 len), 3 RC word, 4 interrupt, 5 config size (u16, u16), 6 NEEDS_RESET,
# 7 the application writes (u8 port, u16 n), 8 it reads (u8 port).
def k_ctl(msg, claim=None):
    return bytes([0]) + msg + (bytes([0]) if claim is None else bytes([1]) + struct.pack("<I", claim))


def k_data(port, n, claim=None):
    return bytes([1, port]) + struct.pack("<H", n) + (bytes([0]) if claim is None else bytes([1]) + struct.pack("<I", claim))


def k_take(which, length=0):
    return bytes([2, which]) + struct.pack("<I", length)


def gen_console_driver():
    t = "console_driver_fuzz"
    two = bytes([1]) + struct.pack("<HH", 80, 24)
    up = bytes([4]) + k_take(2) + k_ctl(cm(0, 1)) + k_ctl(cm(1, 1)) + bytes([4]) + k_take(2)
    write(t, "multiport-session", bytes([0x0f]) + two + up + k_ctl(cm(1, 7, 1, name=b"log")) + k_ctl(cm(0, 4, 1))
          + k_ctl(cm(0, 5, 0, size=(100, 30))) + k_ctl(cm(0, 6, 1)) + bytes([4]) + k_data(0, 100) + bytes([4, 8, 0])
          + bytes([7, 1]) + struct.pack("<H", 300) + bytes([4]) + k_take(1) + bytes([4]) + k_ctl(cm(1, 2)) + bytes([4])
          + k_take(2))
    write(t, "no-multiport", bytes([0x04, 0]) + struct.pack("<HH", 80, 25) + k_data(0, 10) + bytes([4, 8, 0, 7, 0])
          + struct.pack("<H", 64) + bytes([4]) + k_take(0) + bytes([5]) + struct.pack("<HH", 132, 43) + bytes([4]))
    write(t, "hostile-names-and-ids", bytes([0x01]) + two + up + k_ctl(cm(0, 7, 1, name=b"../etc")) + k_ctl(cm(0, 7, 1, name=b"a/b"))
          + k_ctl(cm(0, 7, 1, name=b"n" * 70)) + k_ctl(cm(1, 7, 1, name=b"port0")) + k_ctl(cm(0, 7, 1, name=b"dup"))
          + k_ctl(cm(1, 7, 1, name=b"dup")) + k_ctl(cm(0, 1, raw_id=0xffffffff)) + k_ctl(cm(0, 99))
          + k_ctl(cm(0, 1)) + k_ctl(cm(0, 2), claim=0xffffffff) + k_ctl(cm(0, 2)) + k_ctl(cm(0, 6, 1)) + bytes([4])
          + k_data(1, 1099) + k_data(0, 5, claim=0xffffffff) + k_data(0, 5, claim=1024) + bytes([4, 8, 0]))
    write(t, "add-remove-flood", bytes([0x03, 0]) + struct.pack("<HH", 0, 0)
          + (k_ctl(cm(0, 1)) + bytes([4]) + k_ctl(cm(0, 2)) + bytes([4])) * 8)
    write(t, "reset-and-scribble", bytes([0x07]) + two + up + k_data(0, 40) + bytes([3]) + struct.pack("<II", 0x100, 0xffffffff)
          + bytes([4, 6]) + up + k_data(1, 40) + bytes([4, 8, 1]))
    write(t, "bad-max-nr-ports", bytes([0x21, 0]) + struct.pack("<I", 1000) + struct.pack("<HH", 80, 24) + bytes([4]))


if __name__ == "__main__":
    gen_console_device()
    gen_console_driver()
    gen_control()
    gen_net_driver()
    gen_net_device()
    gen_nbd_server()
    gen_loopback_hello()
    gen_driver_transport()
    gen_rpmsg_channels()
    gen_rpmsg_relay()
    gen_rpmsg_device()
    gen_blk_device()
    gen_blk_driver()
    gen_rpmsg_driver()
    gen_console()
    gen_blk()
    gen_vringh()
    gen_vring_used()
    gen_transport()
