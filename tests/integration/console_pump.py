#!/usr/bin/env python3
"""Random bytes both ways through one virtio-console port: the EP side a unix socket port, the
host side its pty. Prints MB/s each way; exit status 1 unless every byte arrived unchanged.
usage: console_pump.py HOST_PTY EP_SOCKET BYTES"""
import hashlib
import os
import select
import socket
import sys
import termios
import time
import tty


def pump(wfd, write, rfd, read, data, timeout=120.0):
    got, off, end = bytearray(), 0, time.monotonic() + timeout
    while len(got) < len(data) and time.monotonic() < end:
        r, w, _ = select.select([rfd], [wfd] if off < len(data) else [], [], 0.1)
        if w:
            try:
                off += write(data[off:off + 16384])
            except BlockingIOError:
                pass
        if r:
            try:
                got += read()
            except BlockingIOError:
                pass
    return bytes(got)


def main():
    pty_path, sock_path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fd = os.open(pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.setblocking(False)
    ok = True
    for name, wfd, write, rfd, read in (("EP -> host", s, s.send, fd, lambda: os.read(fd, 65536)),
                                        ("host -> EP", fd, lambda b: os.write(fd, b), s, lambda: s.recv(65536))):
        data = os.urandom(size)
        t0 = time.monotonic()
        got = pump(wfd, write, rfd, read, data)
        same = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        ok = ok and same
        print(f"console {name}: {len(got)} of {size} bytes {'identical' if same else 'DIFFERENT'}, "
              f"{size / (time.monotonic() - t0) / 1e6:.1f} MB/s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
