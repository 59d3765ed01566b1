"""File descriptors: a count on every invocation, a described table only when it moved.

The count is one ``fstat`` of a held ``/proc/self/fd`` (Linux 6.2+ reports the number of open
fds as its size). Older kernels, Lambda's among them, report no size: there the count is the
last listing's plus the fds a one-``poll()`` gate (``_fd_gate``) sees in the lowest numbers
that were free, with a full listing every so often to see what closed. When the count moved,
or the gate says a new fd may be open, each new fd is described: what it is (file, socket,
pipe), where it points, and the site that created it, matched from the creation events of this
invocation. A file or socket opened and closed within the invocation costs the gate, not a
listing.

Every kind has a site and a stable group: an anonymous temporary file (``O_TMPFILE``, read
back as ``/tmp/#123 (deleted)``) is matched to the directory ``open`` was given and grouped by
it; pipes and memfds, which no audit event tells, are matched to the ``os.pipe`` and
``os.memfd_create`` wrappers' records (``_scope``), only when the fd is of the kind recorded;
the fds of an owner that bundles them (an event loop's epoll and self-pipe) are one resource
at the owner's line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence

from .._records import NO_CHANGE, Creation, Delta, Resource
from .._scope import Scope, others_live
from ._fd_gate import WIDTH, Numbers, lowest_free
from ._protocol import Probe

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._tuple import NamedTuple

__all__ = ["FdProbe", "count_fds", "emulate_kernel_without_count", "fd_table"]

_FD_DIR = "/proc/self/fd"


_dir_fd = -1  # /proc/self/fd held open: fstat on it costs a third of a stat by path


def _open_dir() -> None:
    global _dir_fd  # noqa: PLW0603 - one descriptor for the process
    if _dir_fd >= 0:  # in a forked child: the parent's, whose "self" is the parent
        os.close(_dir_fd)
    _dir_fd = os.open(_FD_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _count_by_stat() -> int:
    return os.fstat(_dir_fd).st_size


def _count_by_listing() -> int:
    return len(os.listdir(_FD_DIR)) - 1  # the listing's own descriptor


def _count_by_psutil() -> int:
    import psutil  # only where /proc is missing

    return int(psutil.Process().num_fds())


def _pick_counter() -> Callable[[], int]:
    global _dir_fd  # noqa: PLW0603 - one descriptor for the process
    try:
        _open_dir()
        size = _count_by_stat()
    except OSError:
        return _count_by_psutil
    if size > 0 and abs(size - _count_by_listing()) <= 1:
        os.register_at_fork(after_in_child=_open_dir)
        return _count_by_stat
    os.close(_dir_fd)  # a kernel before 6.2 reports no size: list instead
    _dir_fd = -1
    return _count_by_listing


count_fds = _pick_counter()  # open file descriptors of this process, cheaply
_kernel_count = count_fds


def emulate_kernel_without_count(on: bool = True) -> None:
    """Count as on a kernel before 6.2 (``st_size`` 0), for benchmarks and tests: probes built
    afterwards take that path."""
    global count_fds  # noqa: PLW0603 - the process's one choice of counter
    count_fds = _count_by_listing if on else _kernel_count


# On a kernel without a count, a full listing every this many snapshots: at least 64, more as
# the listing costs more, so that it stays near 1 us per snapshot (478 us at 900 fds).
_RELIST_MIN, _RELIST_MAX = 64, 4096


def fd_table(only: Iterable[int] | None = None) -> dict[int, str]:
    """``{fd: target}`` where target is what ``/proc/self/fd/N`` links to (all, or ``only``)."""
    table: dict[int, str] = {}
    for fd in (int(name) for name in os.listdir(_FD_DIR)) if only is None else only:
        try:
            table[fd] = os.readlink(f"{_FD_DIR}/{fd}")
        except OSError:  # closed meanwhile, such as the listing's own descriptor
            continue
    return table


def _listed() -> set[int]:
    """fd numbers in ``/proc/self/fd``, including the listing's own, closed by now."""
    return {int(name) for name in os.listdir(_FD_DIR)}


def _drop_listing_fd(table: dict[int, str]) -> None:
    # The listing's descriptor took the lowest free number, so every number below it is open:
    # walking up from the bottom, the first closed one is it.
    for fd in sorted(table):
        try:
            os.fstat(fd)
        except OSError:
            del table[fd]
            return


class FdProbe(Probe):
    """Counts fds; describes and attributes the ones an invocation left open.

    Not ``holding``: an fd that closes moves the count, so there is no need to look every time.
    """

    name = "fds"
    stat = "fds"

    def __init__(self, claims: bool = False) -> None:
        self.known: dict[int, str] | None = None  # the table as last listed
        # fds opened by invocations and still open, with the target they pointed to
        self.retained: dict[int, tuple[str, Resource]] = {}
        # the DB probe reports the fds of the connections it sees (a socket, a SQLite file),
        # which the invocation's scope claims: seen here, left to it
        self.claims = claims
        self.gate = Numbers()  # where new fds would go: all closed means nothing new is open
        self.held = Numbers()  # the retained fds: on a kernel without a count, what closed
        self.counted = count_fds is _count_by_stat  # the kernel counts: one fstat
        if self.counted:
            self.snapshot = count_fds  # type: ignore[method-assign] # the hot path: no frame
        self._unlisted = 0  # snapshots since the last listing
        self._relist_every = _RELIST_MIN

    def snapshot(self) -> int:
        """The count, on a kernel that gives none: the last listing's, plus the watched free
        numbers now taken, minus the retained fds now closed."""
        known = self.known
        if known is not None:
            self._unlisted += 1
            free, closed = self.gate.closed(), self.held.closed()
            if free >= 0 and closed >= 0:
                return len(known) + WIDTH - free - closed
        return _count_by_listing()

    @property
    def holding(self) -> bool:
        """Without a kernel count, a listing is due every so often, to see what closed or hid
        from the gate: at the end of an invocation, so that what it finds is that one's."""
        return not self.counted and self._unlisted >= self._relist_every

    def _listing(self) -> set[int]:
        started = time.perf_counter_ns()
        listed = _listed()
        # relist as rarely as keeps the cost near 1 us per snapshot (478 us at 900 fds)
        cost_us = (time.perf_counter_ns() - started) // 1000
        self._relist_every = max(_RELIST_MIN, min(_RELIST_MAX, cost_us))
        return listed

    def _refresh(self, table: dict[int, str]) -> list[Resource]:
        gone = [fd for fd, (target, _) in self.retained.items() if table.get(fd) != target]
        self.known = table
        self.gate = Numbers(lowest_free(table))
        self._unlisted = 0
        removed = [self.retained.pop(fd)[1] for fd in gone]
        if removed and not self.counted:
            self.held = Numbers(self.retained)
        return removed

    def _nothing_new(self, creations: Sequence[Creation]) -> bool:
        """No fd opened in this invocation can still be open: its sockets are closed, so are
        its pipes and the like, and the numbers a new fd would take are free (``_fd_gate``)."""
        if any(c.kind == "socket" and _fileno(c.ref()) >= 0 for c in creations):
            return False
        if any(c.kind == "fd" and any(map(_is_open, c.ref)) for c in creations):
            return False
        return self.gate.closed() == self.gate.size

    def diff(self, before: int | None, after: int, scope: Scope, invocation: int) -> Delta:
        if not invocation or self.known is None:
            # Baseline, or a change between invocations: not the coming invocation's doing.
            return Delta([], self._refresh(fd_table()))
        creations = scope.creations
        if (
            after == before
            and not self.holding
            and (
                not any(c.kind in ("file", "socket", "fd") for c in creations)
                or self._nothing_new(creations)
            )
        ):
            return NO_CHANGE
        known = self.known or {}
        listed = self._listing()
        # One readlink per fd would make a leaking handler quadratic. Read only the numbers
        # that are new, and those an event of this invocation may have reused.
        suspects = (listed - known.keys()) | (_reused(creations) & listed)
        new = fd_table(suspects)  # the listing's own, closed, descriptor drops out here...
        table = {fd: known[fd] for fd in listed - suspects if fd in known}
        table.update(new)
        if len(table) > len(listed) - 1:  # ...unless it took the number of an fd closed meanwhile
            _drop_listing_fd(table)
        new = {fd: target for fd, target in new.items() if known.get(fd) != target}
        if new and scope.overlapped:
            new = self._own(new, table, scope)
        removed = self._refresh(table)
        if new and self.claims:
            fds, paths = scope.claimed()
            new = {fd: t for fd, t in new.items() if fd not in fds and t not in paths}
        if new:  # an object made before this invocation (a module-level client) owns its pool
            pooled = {
                fd
                for c in creations
                if c.owner is not None and c.owner.serial != scope.serial
                for fd in _fds_of(c)
            }
            new = {fd: t for fd, t in new.items() if fd not in pooled}
        added = _describe(new, creations, invocation)
        for res in added:
            self.retained[res.key] = (new[res.key], res)  # type: ignore[index]
        if added and not self.counted:
            self.held = Numbers(self.retained)
        return Delta(added, removed)

    @staticmethod
    def _own(new: dict[int, str], table: dict[int, str], scope: Scope) -> dict[int, str]:
        """Another invocation ran meanwhile, and the fd table is the process's: keep the fds
        this invocation's own creations explain. Those another live invocation's explain stay
        unseen, for its own end to find; the rest are nobody's (baseline)."""
        mine = _explained(scope.creations)
        theirs = _explained([c for other in others_live(scope) for c in other.creations])
        own = {}
        for fd, target in new.items():
            if fd in mine[0] or target in mine[1]:
                own[fd] = target
            elif fd in theirs[0] or target in theirs[1]:
                del table[fd]
        return own


def _explained(creations: Sequence[Creation]) -> tuple[set[int], set[str]]:
    """The socket fds and the file paths these creations opened."""
    sockets = {_fileno(c.ref()) for c in creations if c.kind == "socket"}
    paths = {os.path.realpath(c.ref) for c in creations if c.kind == "file"}
    return sockets, paths


def _reused(creations: Sequence[Creation]) -> set[int]:
    """fd numbers that sockets, pipes and the like created in this invocation occupy, reused
    numbers included.

    (A file reopened on a reused number reads the same as before: readlink cannot tell.)
    """
    return {fd for c in creations if c.kind in ("socket", "fd") for fd in _fds_of(c)}


def _fds_of(creation: Creation) -> tuple[int, ...]:
    if creation.kind == "socket":
        return (_fileno(creation.ref()),)
    return creation.ref if creation.kind == "fd" else ()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


_DELETED = " (deleted)"


def _anonymous_in(target: str) -> str | None:
    """The directory of an anonymous temporary file (``O_TMPFILE``: ``/tmp/#123 (deleted)``),
    or None for any other target."""
    if not target.endswith(_DELETED):
        return None
    directory, _, name = target[: -len(_DELETED)].rpartition("/")
    return (directory or "/") if name[:1] == "#" and name[1:].isdigit() else None


class _Made(NamedTuple):
    """This invocation's creations, by the fd they made."""

    sockets: dict[int, Creation]
    files: dict[str, list[Creation]]  # by real path: several opens of one file
    fds: dict[int, Creation]  # fds of calls no audit event tells (os.pipe, an epoll)


def _index(creations: Sequence[Creation]) -> _Made:
    made = _Made({}, {}, {})
    for creation in creations:
        if creation.kind == "socket":
            fileno = _fileno(creation.ref())
            if fileno >= 0:
                made.sockets[fileno] = creation
        elif creation.kind == "file":
            made.files.setdefault(os.path.realpath(creation.ref), []).append(creation)
        elif creation.kind == "fd":
            for fd in creation.ref:
                made.fds[fd] = creation  # the latest: a number closed and made again is new
    return made


def _describe(
    new: dict[int, str], creations: Sequence[Creation], invocation: int
) -> list[Resource]:
    if not new:
        return []
    made = _index(creations)
    peers: dict[int, str] | None = None
    out: list[Resource] = []
    for fd, target in sorted(new.items()):
        maker = made.fds.get(fd)
        if maker is not None and not target.startswith(maker.detail):
            maker = None  # the number was reused by an fd of another kind
        creation = made.sockets.get(fd) or maker
        owner = creation.owner if creation is not None else None
        if creation is not None and owner is not None and owner.bundles:
            # one resource of its owner: an event loop's epoll and self-pipe sockets together
            detail = f"of {owner.kind}s never closed"
            out.append(Resource("fd", fd, "fd", detail, creation.attributed_site, invocation))
        elif target.startswith("socket:"):
            if peers is None and _socket_detail(_sock(creation)) is None:
                peers = _psutil_peers()
            out.append(_socket(fd, creation, peers or {}, invocation))
        elif maker is not None:
            out.append(_made(fd, target, maker, invocation))
        elif target.startswith("/"):
            out.append(_file(fd, target, made.files, invocation))
        elif target.startswith("pipe:"):
            out.append(Resource("fd", fd, "pipe", "", None, invocation))
        else:  # anon_inode:[eventfd], anon_inode:[eventpoll], ...
            out.append(Resource("fd", fd, "fd", f"({target})", None, invocation))
    return out


def _sock(creation: Creation | None) -> object:
    return creation.ref() if creation is not None and creation.kind == "socket" else None


def _socket(fd: int, opened: Creation | None, peers: dict[int, str], invocation: int) -> Resource:
    detail = _socket_detail(_sock(opened))
    if detail is None:  # made outside Python's socket module (a C extension): psutil's word
        detail = peers.get(fd, "")
    site = opened.attributed_site if opened is not None else None
    return Resource("socket", fd, "socket", detail, site, invocation)


def _made(fd: int, target: str, maker: Creation, invocation: int) -> Resource:
    """An fd whose making the fd-maker wrappers (``_scope``) saw: a pipe, a memfd, an epoll."""
    site = maker.attributed_site
    if target.startswith("pipe:"):
        return Resource("fd", fd, "pipe", "", site, invocation)
    if target.startswith("/memfd:"):
        name = target[len("/memfd:") :].removesuffix(_DELETED)
        return Resource("fd", fd, "memfd", f"named {name!r}", site, invocation)
    return Resource("fd", fd, "fd", f"({target})", site, invocation)


def _file(fd: int, target: str, files: dict[str, list[Creation]], invocation: int) -> Resource:
    """A file: matched to the ``open`` that made it. An anonymous temporary file is told by
    its directory (what ``open`` was given), and grouped by it, not by its inode."""
    directory = _anonymous_in(target)
    if directory is not None:
        matches = files.get(directory)
        noun, detail = "anonymous temporary file", f"in {directory}"
    else:
        matches = files.get(target) or files.get(target.removesuffix(_DELETED))
        noun, detail = "file", f"open on {target}"
    opened = matches.pop() if matches else None
    site = opened.site if opened is not None else None
    if site is not None and site.via is None and opened is not None and opened.detail:
        site = site._replace(via=opened.detail)  # sqlite3.connect: a connection's file
    return Resource("fd", fd, noun, detail, site, invocation)


def _fileno(sock: object) -> int:
    try:
        return int(sock.fileno())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - collected, closed, or not a socket at all
        return -1


def _format_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) or "an unnamed unix socket"


def _socket_detail(sock: object) -> str | None:
    if sock is None:
        return None
    try:
        return "to " + _format_address(sock.getpeername())  # type: ignore[attr-defined]
    except OSError:
        pass
    try:
        local = sock.getsockname()  # type: ignore[attr-defined]
    except OSError:
        return None
    if isinstance(local, tuple) and local[1] == 0:
        return "not connected"
    return "on " + _format_address(local)


def _psutil_peers() -> dict[int, str]:
    """Sockets made outside Python's socket module (C extensions): ask psutil."""
    try:
        import psutil

        process = psutil.Process()
        connections = getattr(process, "net_connections", process.connections)("all")
    except Exception:  # noqa: BLE001 - details are a courtesy; never fail for them
        return {}
    out: dict[int, str] = {}
    for conn in connections:
        if conn.raddr:
            out[conn.fd] = "to " + _format_address(tuple(conn.raddr))
        elif conn.laddr:
            out[conn.fd] = "on " + _format_address(tuple(conn.laddr) or conn.laddr)
    return out
