"""Packages vendored into the task root are libraries, not the handler's code.

A Lambda zip built with ``pip install -t .`` puts its packages beside the handler, each with
the metadata pip wrote: ``<name>.dist-info/RECORD`` (every file installed, so every top-level
package and module it made) or, for an old egg install, ``<name>.egg-info/top_level.txt``. A
top-level name that metadata claims is a library: its module state is not the handler's.
Read once per directory, at decoration time (a cold start pays a few RECORD files).
"""

from __future__ import annotations

import functools
import os

__all__ = ["vendored_names"]

_SOURCE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


@functools.lru_cache(maxsize=16)
def vendored_names(root: str) -> frozenset[str]:
    """The top-level module and package names that installed distributions in ``root``
    claim (empty when there is none, or the directory cannot be read)."""
    try:
        entries = os.listdir(root)
    except OSError:
        return frozenset()
    names: set[str] = set()
    for entry in entries:
        meta = os.path.join(root, entry)
        if entry.endswith(".dist-info"):
            names.update(_record_tops(os.path.join(meta, "RECORD")))
            names.update(_lines(os.path.join(meta, "top_level.txt")))
        elif entry.endswith(".egg-info"):
            names.update(_lines(os.path.join(meta, "top_level.txt")))
    names.discard("")
    return frozenset(names)


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return [line.strip().replace("/", ".").partition(".")[0] for line in file]
    except OSError:
        return []


def _record_tops(path: str) -> set[str]:
    """The first path part of each installed file: ``pkg/__init__.py`` -> pkg, ``six.py`` ->
    six, ``_cffi.cpython-311-x86_64-linux-gnu.so`` -> _cffi; not the metadata, not scripts
    installed outside the directory (``../../bin/x``)."""
    tops: set[str] = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                installed = line.partition(",")[0].strip().strip('"')
                first, slash, _ = installed.partition("/")
                if not first or first == ".." or first.endswith((".dist-info", ".egg-info")):
                    continue
                if first == "__pycache__" or first.endswith(".data"):
                    continue
                if slash:
                    tops.add(first)
                elif first.endswith(_SOURCE_SUFFIXES):
                    tops.add(first.partition(".")[0])
    except OSError:
        pass
    return tops
