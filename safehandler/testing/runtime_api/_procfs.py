"""Which process holds the other end of a connection: socket inode to pid, from ``/proc``.

Linux only; elsewhere, or when the process is gone, the answer is ``None``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

__all__ = ["peer_pid"]

_SOCK_DIAG = ("/proc/net/tcp", "/proc/net/tcp6")


def peer_pid(client_port: int, server_port: int, started: Iterable[int]) -> int | None:
    """The pid whose socket is 127.0.0.1:client_port -> :server_port, from /proc (Linux).

    ``started``: pids of the runtimes started for the server, searched first.
    """
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    candidates: list[int] = []
    for pid in started:  # the runtimes we started (and their children) first: cheap
        candidates += _descendants(pid)
    seen = set(candidates)
    with contextlib.suppress(OSError):
        candidates += [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in seen]
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
    return None


def _socket_inode(local_port: int, remote_port: int) -> int | None:
    for table in _SOCK_DIAG:
        try:
            with open(table, encoding="ascii") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            local, remote = cols[1], cols[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == local_port
                and int(remote.rsplit(":", 1)[1], 16) == remote_port
                and cols[9] != "0"  # TIME_WAIT leftovers have no inode
            ):
                return int(cols[9])
    return None


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:  # gone: the full /proc scan still runs
        return [pid]
