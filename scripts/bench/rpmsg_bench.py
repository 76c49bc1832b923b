#!/usr/bin/env python3
"""Round trips and one-way streams of small messages over SOCK_SEQPACKET unix sockets, for
scripts/bench/compare.sh: the same code runs over an rpmsg channel of the loopback link and over
a plain pair of connected unix sockets, so that only the transport differs.

usage:
  rpmsg_bench.py serve --announce PATH --name NAME   the service, as an rpmsg channel: connects to an
                                                     announce socket (<runtime_dir>/ep/announce.sock)
                                                     and registers NAME; exits when it is closed
  rpmsg_bench.py serve --listen PATH                 the service on a listening unix socket of its
                                                     own (the peer); one client at a time
  rpmsg_bench.py rtt --socket PATH [--seconds S] [--size N]
      one message at a time through the service's echo for S seconds (after a short warm-up);
      prints JSON {"messages", "p50_us", "p99_us", "msgs_per_s"}
  rpmsg_bench.py stream --socket PATH [--seconds S] [--size N]
      messages one way, as fast as the socket takes them, for S seconds; then asks the service how
      many arrived and when the last one did; prints JSON {"sent", "received", "lost", "seconds",
      "msgs_per_s"} where msgs_per_s = received / (first send .. last arrival), both CLOCK_MONOTONIC

The client connects to PATH: <runtime_dir>/host/NAME.sock for the channel (vepf-host's socket for
the channel the EP side announced), the --listen PATH for the peer. Protocol: a data message
starts with 0x00; a control message is 0xff and one letter: "E" echo data messages (the default),
"S" count them instead (and reset the count), "C" answer with the count and the CLOCK_MONOTONIC
nanoseconds of the latest arrival (8 bytes each, little endian).
E and S are acknowledged by echoing them. Payloads are at most 496 bytes (one rpmsg buffer).
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

MAX_PAYLOAD = 496
CTL = 0xFF


def connect(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def serve_conn(s):
    """Serves one connection until it closes: echo or count (see the protocol above)."""
    echo, count, last = True, 0, 0
    recv, send, now = s.recv, s.send, time.monotonic_ns
    while True:
        try:
            m = recv(4096)
        except InterruptedError:
            continue
        if not m:
            return
        if m[0] != CTL:
            if echo:
                send(m)
            else:
                count += 1
                last = now()
            continue
        op = m[1:2]
        if op == b"E":
            echo = True
            send(m)
        elif op == b"S":
            echo, count, last = False, 0, 0
            send(m)
        elif op == b"C":
            send(b"\xffC" + struct.pack("<QQ", count, last))


def serve(args):
    if args.announce:
        s = connect(args.announce)
        s.send(args.name.encode())
        try:
            serve_conn(s)
        except (ConnectionError, OSError):
            pass
        return 0
    try:
        os.unlink(args.listen)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ls.bind(args.listen)
    ls.listen(4)
    while True:
        c, _ = ls.accept()
        try:
            serve_conn(c)
        except (ConnectionError, OSError):
            pass
        c.close()


def wait_msg(s, timeout):
    """The next message, or None after `timeout` seconds."""
    r, _, _ = select.select([s], [], [], timeout)
    return s.recv(4096) if r else None


def control(s, op, timeout=5.0):
    """Sends control message `op` and returns its answer (resent once a second until answered:
    an rpmsg channel may drop a message when the receiving program's socket is full)."""
    deadline = time.monotonic() + timeout
    s.send(b"\xff" + op)
    last = time.monotonic()
    while time.monotonic() < deadline:
        m = wait_msg(s, 0.2)
        if m is not None and m[:2] == b"\xff" + op:
            return m
        if m is None and time.monotonic() - last >= 1.0:
            s.send(b"\xff" + op)
            last = time.monotonic()
    sys.exit(f"rpmsg_bench: no answer to control message {op!r} within {timeout} s")


def payload(size):
    return b"\x00" + bytes((i * 7 + 1) & 0x7F for i in range(size - 1))


def rtt(args):
    s = connect(args.socket)
    control(s, b"E")
    msg = payload(args.size)
    send, recv = s.send, s.recv
    clock = time.perf_counter_ns
    warm = time.monotonic() + min(0.2, args.seconds / 10)
    while time.monotonic() < warm:
        send(msg)
        if wait_msg(s, 5.0) is None:
            sys.exit("rpmsg_bench: no echo within 5 s (warm-up)")
    # A blocking recv (no poll per message): the echo of one message at a time cannot be lost to
    # a full socket; a timeout guards against a stuck service.
    s.settimeout(5.0)
    rtts = []
    end = clock() + int(args.seconds * 1e9)
    t0 = clock()
    while True:
        a = clock()
        send(msg)
        m = recv(4096)
        b = clock()
        if len(m) != len(msg):
            sys.exit(f"rpmsg_bench: echo of {len(m)} bytes for {len(msg)}")
        rtts.append(b - a)
        if b >= end:
            break
    elapsed = (clock() - t0) / 1e9
    rtts.sort()
    pct = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] / 1e3  # noqa: E731
    print(json.dumps({"messages": len(rtts), "p50_us": round(pct(0.5), 3), "p99_us": round(pct(0.99), 3),
                      "msgs_per_s": round(len(rtts) / elapsed, 1)}))
    return 0


def stream(args):
    s = connect(args.socket)
    control(s, b"S")
    msg = payload(args.size)
    send = s.send
    clock = time.monotonic_ns  # the service's clock too
    sent = 0
    t0 = clock()
    end = t0 + int(args.seconds * 1e9)
    while True:
        for _ in range(256):
            send(msg)
        sent += 256
        if clock() >= end:
            break
    m = control(s, b"C", timeout=max(10.0, args.seconds * 4))
    received, last = struct.unpack("<QQ", m[2:18])
    elapsed = (last - t0) / 1e9 if received else (clock() - t0) / 1e9
    print(json.dumps({"sent": sent, "received": received, "lost": sent - received, "seconds": round(elapsed, 4),
                      "msgs_per_s": round(received / elapsed, 1)}))
    control(s, b"E")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    g = sv.add_mutually_exclusive_group(required=True)
    g.add_argument("--announce")
    g.add_argument("--listen")
    sv.add_argument("--name", default="bench")
    for name in ("rtt", "stream"):
        c = sub.add_parser(name)
        c.add_argument("--socket", required=True)
        c.add_argument("--seconds", type=float, default=3.0)
        c.add_argument("--size", type=int, default=64)
    args = p.parse_args()
    if args.cmd != "serve" and not 1 <= args.size <= MAX_PAYLOAD:
        p.error(f"--size must be 1..{MAX_PAYLOAD}")
    return {"serve": serve, "rtt": rtt, "stream": stream}[args.cmd](args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
