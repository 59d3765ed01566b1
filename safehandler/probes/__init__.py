"""The probes, one per resource, and how the policy picks them. The protocol: ``_protocol``."""

from __future__ import annotations

from collections.abc import Callable

from ._protocol import Probe

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

    from ..policy import Policy

__all__ = ["Probe", "build_probes"]


def build_probes(policy: Policy, handler: Callable[..., Any] | None) -> list[Probe]:
    """The probes the policy asks for, in a fixed order, set up from its settings."""
    from .db import DbProbe
    from .fds import FdProbe
    from .globals import GlobalsProbe, handler_modules
    from .memory import MemoryProbe
    from .processes import ProcessProbe
    from .threads import ThreadProbe

    wanted = policy.probes
    factories: dict[str, Callable[[], Probe]] = {
        # with the db probe, a connection's socket or SQLite file is reported once, by it
        "fds": lambda: FdProbe(claims="db" in wanted),
        "threads": lambda: ThreadProbe(policy.thread_grace_ms, policy.allow_threads),
        "processes": ProcessProbe,
        "db": DbProbe,
        "globals": lambda: GlobalsProbe(
            handler_modules(handler),
            allow=policy.allow_globals,
            # content fingerprints cost more: for strict tests and soaks (a warm-up)
            deep=policy.strict or policy.warmup > 0,
            every=policy.shared_state_rotation,
            # restore removes what an invocation added to a container: it needs the contents
            keep_contents=policy.isolation == "restore",
            # the line of a change made once: traced from the first invocation (cost second)
            survey=policy.thorough,
        ),
        "memory": MemoryProbe,
    }
    return [factory() for name, factory in factories.items() if name in wanted]
