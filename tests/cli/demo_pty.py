#!/usr/bin/env python3
"""`meridian demo` on a terminal: the shell is interactive, Ctrl-C cancels a
running statement without touching the cluster (the nodes run in their own
session, away from the terminal's signals), `.demo kill N` / `.demo
restart N` act on one node, and `.quit` stops every node and removes the
demo's directory.

usage: demo_pty.py MERIDIAN TMPDIR  (the node flags come from the
environment, MERIDIAN_START_FLAGS)."""
import os
import pty
import re
import select
import sys
import time

TIMEOUT = 60
meridian, tmpdir = sys.argv[1], sys.argv[2]
os.environ["TMPDIR"] = tmpdir
os.environ.setdefault("MERIDIAN_HISTORY", os.path.join(tmpdir + ".history"))

pid, fd = pty.fork()
if pid == 0:
    os.execv(meridian, [meridian, "demo", "--nodes", "3"])
buf = b""


def expect(text):
    global buf
    want = text.encode()
    end = time.monotonic() + TIMEOUT
    while want not in buf:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("waiting for %r; got %r" % (text, buf[-800:]))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise EOFError("demo exited; got %r" % buf[-800:])
            buf += chunk
    i = buf.index(want) + len(want)
    out, buf = buf[:i], buf[i:]
    return out.decode(errors="replace")


def alive(p):
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % p) as f:
        return f.read().split(") ")[1][0] != "Z"


started = expect("> ")
pids = [int(p) for p in re.findall(r"node \d+  pid (\d+)", started)]
assert len(pids) == 3, started
# 'started' comes from the first statement, so the long one is under way
# (or about to be: the batch is busy, and an interrupt then still cancels).
os.write(fd, b"SELECT 'started' AS s; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
             b"SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) FROM c;\n")
expect("started")
expect("(1 row)")
os.write(fd, b"\x03")
expect("ERROR: interrupted")
expect("> ")
assert all(alive(p) for p in pids), "Ctrl-C reached the nodes"
os.write(fd, b".demo kill 2\n")
expect("OK")
expect("> ")
os.write(fd, b".demo nodes\n")
listing = expect("> ")
assert re.search(r"^2 %d down" % pids[1], listing, re.M), listing
os.write(fd, b".demo restart 2\n")
expect("OK")
expect("> ")
os.write(fd, b"SELECT 40 + 2;\n")
expect("42")
expect("> ")
os.write(fd, b".demo nodes\n")
listing = expect("> ")
restarted = [int(p) for p in re.findall(r"^2 (\d+) up", listing, re.M)]
assert restarted, listing
os.write(fd, b".quit\n")
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
left = [p for p in pids + restarted if alive(p)]
assert not left, "processes left: %r" % left
assert not os.listdir(tmpdir), os.listdir(tmpdir)
print("demo_pty: ok")
