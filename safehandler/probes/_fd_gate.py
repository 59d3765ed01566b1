"""Whether fds opened or closed since the last listing of ``/proc/self/fd``, in one system call.

POSIX gives a new descriptor the lowest free number. So if the lowest ``WIDTH`` numbers that
were free at the last listing are all still free, nothing opened since is still open, except:

- a number known at the listing was closed and then reused: a reconnect or a reopen, which
  leaves the count where it was (harmless to miss: nothing grew);
- more than ``WIDTH`` descriptors were open at once and all but a later one were closed
  (a handler holding nine temporary files at once and keeping a tenth).

One ``poll()`` over those numbers answers: a free number reports ``POLLNVAL``. The same call
over the numbers of fds an invocation left open tells which of them closed. What the gate
misses, a full listing finds later: the fd probe lists again whenever the count moved, and, on
kernels that give no count, every so often (see ``FdProbe``).
"""

from __future__ import annotations

import select
from collections.abc import Iterable

__all__ = ["WIDTH", "Numbers", "lowest_free"]

WIDTH = 8  # free numbers watched: a handler would have to hold more temporaries at once to hide


def lowest_free(open_fds: Iterable[int], width: int = WIDTH) -> list[int]:
    """The ``width`` lowest numbers not in ``open_fds``: where the next fds will go."""
    taken = set(open_fds)
    free: list[int] = []
    number = 0
    while len(free) < width:
        if number not in taken:
            free.append(number)
        number += 1
    return free


class Numbers:
    """Some fd numbers, and how many of them are closed now."""

    __slots__ = ("_poll", "size")

    def __init__(self, numbers: Iterable[int] = ()) -> None:
        poll = select.poll()
        size = 0
        for fd in numbers:
            poll.register(fd, 0)  # no event asked for: only POLLNVAL (closed) or POLLHUP/ERR
            size += 1
        self._poll, self.size = poll, size

    def closed(self) -> int:
        """How many of the numbers are closed; -1 when that cannot be told now."""
        if not self.size:
            return 0
        try:
            events = self._poll.poll(0)
        except (RuntimeError, OSError):  # another thread polls the same object: unknown
            return -1
        return sum(1 for _, event in events if event & select.POLLNVAL)
