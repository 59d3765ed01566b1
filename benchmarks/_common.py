"""Helpers shared by the benchmark scripts: the machine line, medians, clean environments.

Not a benchmark itself. The scripts import it as a sibling module (``python benchmarks/x.py``
puts ``benchmarks/`` first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import socket
import statistics
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine(*packages: str) -> dict[str, Any]:
    """Date, platform, CPU, Python and the versions of ``packages``."""
    cpu_model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "?"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu_model": cpu_model or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_1min": load,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {name: package_version(name) for name in ("safehandler", *packages)},
    }


def machine_line(info: Mapping[str, Any]) -> str:
    versions = ", ".join(f"{name} {v}" for name, v in info["versions"].items())
    return (
        f"{info['date']}; {info['platform']}; {info['cpu_model']}; {info['cpu_count']} cores "
        f"({info['cpus_usable']} usable); load {info['load_1min']}; {info['python']}; {versions}"
    )


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    if len(ordered) < 2:
        return ordered[0], ordered[0]
    q1, _, q3 = statistics.quantiles(ordered, n=4)
    return q1, q3


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without ``SAFEHANDLER_*`` (the default policy) and ``PYTEST*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEHANDLER_", "PYTEST"))}
    env.update(extra or {})
    return env


def write_json(path: str | None, payload: Mapping[str, Any]) -> None:
    if not path:
        return
    with open(path, "w", encoding="utf-8") as out:
        json.dump(payload, out, indent=2, default=str)
        out.write("\n")


@contextlib.contextmanager
def peer_server() -> Iterator[tuple[str, int]]:
    """A TCP server that accepts and hangs up at once: only the client's fds pile up."""
    server = socket.create_server(("127.0.0.1", 0), backlog=1024)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, name="peer-server", daemon=True)
    thread.start()
    try:
        yield ("127.0.0.1", server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        server.close()
