#!/usr/bin/env python3
"""Random block I/O at odd offsets through qemu-io, checked against a model.

usage: blk_model.py NBD_URI SIZE WORKDIR [--ops N] [--seed S]

Generates N random operations (write with a pattern, read back with a pattern check, write-zeroes
with and without unmap, discard, flush) at odd byte offsets and lengths, runs them in one qemu-io
process against NBD_URI, and keeps a model: a bytearray of the device plus a mask of the bytes whose
content is unspecified (NBD_CMD_TRIM: "a client MUST NOT make any assumptions about the contents
... until overwriting it again"). Then reads the whole device back with nbdcopy and compares every
specified byte with the model. Exit status 0 when they agree; prints the first difference otherwise.
"""

import argparse
import os
import random
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("uri")
    ap.add_argument("size", type=int)
    ap.add_argument("workdir")
    ap.add_argument("--ops", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    size = a.size
    span = min(size, 8 << 20)  # keep the ops in the first 8 MiB: overlaps are what matter

    # The device starts as whatever is on it: read it first.
    start = os.path.join(a.workdir, "model-start.img")
    subprocess.run(["nbdcopy", a.uri, start], check=True)
    with open(start, "rb") as f:
        model = bytearray(f.read(span))
    unknown = bytearray(span)  # 1: unspecified after a discard

    cmds, counts = [], {"write": 0, "read": 0, "zero": 0, "discard": 0, "flush": 0}
    for _ in range(a.ops):
        kind = rnd.choices(["write", "read", "zero", "discard", "flush"], [5, 3, 2, 1, 1])[0]
        off = rnd.randrange(0, span - 1)
        length = rnd.randrange(1, min(span - off, 200_000) + 1)
        counts[kind] += 1
        if kind == "write":
            pat = rnd.randrange(1, 256)
            cmds.append(f"write -P {pat} {off} {length}")
            model[off:off + length] = bytes([pat]) * length
            unknown[off:off + length] = bytes(length)
        elif kind == "read":
            # Check only ranges whose content the model knows and that hold one byte value.
            pat = model[off]
            n = 0
            while n < length and model[off + n] == pat and not unknown[off + n]:
                n += 1
            if n == 0:
                counts[kind] -= 1
                continue
            cmds.append(f"read -P {pat} {off} {n}")
        elif kind == "zero":
            unmap = rnd.random() < 0.5
            cmds.append(f"write -z {'-u ' if unmap else ''}{off} {length}")
            model[off:off + length] = bytes(length)
            unknown[off:off + length] = bytes(length)
        elif kind == "discard":
            cmds.append(f"discard {off} {length}")
            unknown[off:off + length] = b"\x01" * length
        else:
            cmds.append("flush")

    args = ["qemu-io", "-f", "raw", a.uri]
    for c in cmds:
        args += ["-c", c]
    r = subprocess.run(args, capture_output=True, text=True)
    out = r.stdout + r.stderr
    if r.returncode != 0 or "Pattern verification failed" in out or "error" in out.lower():
        sys.stderr.write(out[-4000:])
        print(f"FAIL: qemu-io exit {r.returncode}")
        return 1

    back = os.path.join(a.workdir, "model-back.img")
    subprocess.run(["nbdcopy", a.uri, back], check=True)
    with open(back, "rb") as f:
        dev = f.read(span)
    for i in range(span):
        if not unknown[i] and dev[i] != model[i]:
            print(f"FAIL: byte {i}: device {dev[i]:#04x}, model {model[i]:#04x}")
            return 1
    known = span - sum(unknown)
    print(f"ok: {len(cmds)} qemu-io ops ({counts}) at odd offsets; {known} of {span} bytes checked against the model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
