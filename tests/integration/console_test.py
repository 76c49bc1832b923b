#!/usr/bin/env python3
"""virtio-console end to end on the loopback platform, through real ptys.

vepf-ep serves one console device with three ports: 0 "shell" (bash on an EP pty), 1 "tty1" (a
raw pty on the EP, linked), 2 "log" (a unix socket on the EP). vepf-host gives each port a pty
linked in host_dir. Checked:
  1. a shell command typed on the host pty runs on the EP (echo $((6*7)) -> 42);
  2. window size, host -> EP: TIOCSWINSZ on the host pty, `stty size` in the EP shell shows it
     (the vepf extension); EP -> host: TIOCSWINSZ on the EP pty, the host pty shows it (RESIZE);
  3. 1 MiB of random bytes each way through the pty port and the socket port, byte-identical
     (MB/s printed; no speed is asserted);
  4. a second socket client is refused while one is connected;
  5. `exit` in the shell: the EP runs it again and the same host pty gets a new prompt;
  6. picocom on the host pty reaches the EP shell;
  7. `vepf-ep ctl list` shows the ports ready and no bad control message; stopping both
     programs leaves no shell running and removes the links.
usage: console_test.py BUILD_DIR
"""
import fcntl
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import tty

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/default")
EP = os.path.join(BUILD, "ep-firmware", "vepf-ep")
HOST = os.path.join(BUILD, "host-driver", "vepf-host")
WORK = tempfile.mkdtemp(prefix="vepf-console.")
procs = []


def fail(what):
    print("FAIL:", what)
    for name in ("ep.log", "host.log"):
        path = os.path.join(WORK, name)
        if os.path.exists(path):
            print("---", name)
            print(open(path).read()[-6000:])
    raise SystemExit(1)


def check(ok, what):
    if not ok:
        fail(what)
    print("ok:", what)


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    fail("timed out waiting for " + what)


def open_tty(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)  # TCSANOW: keep what is already queued
    return fd


def read_until(fd, want, timeout=10.0):
    out = b""
    end = time.monotonic() + timeout
    while want not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                out += os.read(fd, 65536)
            except (BlockingIOError, OSError):
                pass
    return out


def winsize(fd):
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def pump(wfd, src_write, rfd, dst_read, data, timeout=60.0):
    """Writes data with src_write(bytes) -> int when wfd is writable, reads with dst_read() when
    rfd is readable; returns what arrived."""
    got = bytearray()
    off = 0
    end = time.monotonic() + timeout
    while len(got) < len(data) and time.monotonic() < end:
        r, w, _ = select.select([rfd], [wfd] if off < len(data) else [], [], 0.1)
        if w:
            try:
                off += src_write(data[off:off + 16384])
            except (BlockingIOError, InterruptedError):
                pass
        if r:
            got += dst_read()
    return bytes(got)


def nonblocking_read(fd):
    try:
        return os.read(fd, 65536)
    except (BlockingIOError, InterruptedError):
        return b""


def sock_read(s):
    try:
        return s.recv(65536)
    except (BlockingIOError, InterruptedError):
        return b""


def transfer(name, wfd, write, rfd, read, size=1 << 20):
    data = os.urandom(size)
    t0 = time.monotonic()
    got = pump(wfd, write, rfd, read, data)
    dt = time.monotonic() - t0
    same = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    check(same, f"{name}: {len(got)} of {size} bytes, identical ({size / dt / 1e6:.1f} MB/s)")


def main():
    host_dir = os.path.join(WORK, "host")
    ep_tty = os.path.join(WORK, "ep", "tty1")
    log_sock = os.path.join(WORK, "ep", "log.sock")
    board = os.path.join(WORK, "board.toml")
    with open(board, "w") as f:
        f.write(f"""[board]
name = "console-test"
platform = "loopback"
[loopback]
socket = "{WORK}/link.sock"
[[device]]
type = "console"
queue_size = 64
[device.console]
host_dir = "{host_dir}"
[[device.console.port]]
name = "shell"
backend = "program"
program = ["/bin/bash", "--noprofile", "--norc", "-i"]
[[device.console.port]]
name = "tty1"
backend = "pty"
link = "{ep_tty}"
[[device.console.port]]
name = "log"
backend = "socket"
socket = "{log_sock}"
""")
    env = dict(os.environ, PS1="ep$ ", HISTFILE="/dev/null")
    ep = subprocess.Popen([EP, "--board", board], stdout=open(os.path.join(WORK, "ep.log"), "w"),
                          stderr=subprocess.STDOUT, env=env)
    procs.append(ep)
    wait_for(lambda: os.path.exists(os.path.join(WORK, "link.sock")), 10, "vepf-ep")
    host = subprocess.Popen([HOST, "--board", board, "--once"], stdout=open(os.path.join(WORK, "host.log"), "w"),
                            stderr=subprocess.STDOUT)
    procs.append(host)
    links = ["port0", "port1", "port2", "shell", "tty1", "log"]
    wait_for(lambda: all(os.path.islink(os.path.join(host_dir, n)) for n in links), 10, "the host's pty links")
    check(os.path.realpath(os.path.join(host_dir, "shell")) == os.path.realpath(os.path.join(host_dir, "port0")),
          "host links port0..2 and the port names shell, tty1, log")

    # 1. a command on the EP shell
    sh = open_tty(os.path.join(host_dir, "shell"))
    os.write(sh, b"echo $((6*7))\n")
    check(b"42" in read_until(sh, b"42"), "a command typed on the host pty runs in the EP shell")

    # 2. window size both ways
    set_winsize(sh, 41, 123)
    time.sleep(0.6)  # the host polls the size every 250 ms
    os.write(sh, b"stty size\n")
    check(b"41 123" in read_until(sh, b"41 123"), "host -> EP resize: `stty size` on the EP says 41 123")
    h1 = open_tty(os.path.join(host_dir, "tty1"))
    e1 = open_tty(ep_tty)
    set_winsize(e1, 30, 100)
    wait_for(lambda: winsize(h1) == (30, 100), 5, "EP -> host resize")
    check(True, "EP -> host resize: the host pty of port tty1 is 30x100")

    # 3. bytes both ways, pty port and socket port
    transfer("pty port EP -> host", e1, lambda b: os.write(e1, b), h1, lambda: nonblocking_read(h1))
    transfer("pty port host -> EP", h1, lambda b: os.write(h1, b), e1, lambda: nonblocking_read(e1))
    hl = open_tty(os.path.join(host_dir, "log"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(log_sock)
    s.setblocking(False)
    transfer("socket port EP -> host", s, s.send, hl, lambda: nonblocking_read(hl))
    transfer("socket port host -> EP", hl, lambda b: os.write(hl, b), s, lambda: sock_read(s))

    # 4. one socket client at a time
    s2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s2.connect(log_sock)
    s2.settimeout(5)
    check(s2.recv(1) == b"", "a second client of the socket port is refused while one is connected")
    s2.close()
    s.close()

    # 5. the shell exits and comes back on the same host pty
    os.write(sh, b"exit\n")
    os.write(sh, b"")
    time.sleep(1.5)
    os.write(sh, b"echo back$((2+3))\n")
    check(b"back5" in read_until(sh, b"back5"), "after `exit` the EP runs the shell again on the same host pty")
    os.close(sh)

    # 6. picocom
    pid, master = pty.fork()
    if pid == 0:
        os.execvp("picocom", ["picocom", "-q", "--noreset", "--imap", "lfcrlf", os.path.join(host_dir, "shell")])
    time.sleep(1.0)
    os.write(master, b"echo pico$((3+4))\r")
    out = read_until(master, b"pico7", 10)
    os.write(master, b"\x01\x18")  # C-a C-x: exit
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    check(b"pico7" in out, "picocom on the host pty reaches the EP shell")

    # 7. ctl list, then a clean stop
    lst = json.loads(subprocess.run([EP, "ctl", "--board", board, "list"], capture_output=True, text=True,
                                    check=True).stdout)
    dev = lst["devices"][0]
    check(all(p["ready"] and p["driver_open"] for p in dev["ports"]) and dev["bad_control"] == 0,
          f"ctl list: 3 ports ready and open, 0 bad control messages ({dev['bytes_to_driver']} B to the driver, "
          f"{dev['bytes_from_driver']} B from it)")
    shells = subprocess.run(["pgrep", "-P", str(ep.pid)], capture_output=True, text=True).stdout.split()
    check(len(shells) == 1, "one shell runs under vepf-ep")
    for p in (host, ep):
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    check(not any(os.path.lexists(os.path.join(host_dir, n)) for n in links), "vepf-host removed its pty links")
    check(not os.path.lexists(ep_tty) and not os.path.exists("/proc/" + shells[0]),
          "vepf-ep removed its link and ended the shell")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(WORK, ignore_errors=True)
