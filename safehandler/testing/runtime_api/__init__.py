"""A local Lambda Runtime API, to run a handler under AWS's own runtime client.

``LocalRuntimeAPI`` serves the Runtime API (version 2018-06-01) on 127.0.0.1: ``next`` with
the headers Lambda sends, ``response``, ``error``, ``init/error`` (and SnapStart's
``restore/next`` and ``restore/error``), with Lambda's status codes. ``run_runtime`` starts
``python -m awslambdaric module.function`` against it, as Lambda does (optionally under an
exec wrapper and with Lambda's ``RLIMIT_NOFILE``), so a handler runs in the very loop it runs
in on Lambda: the same import, the same error reports, the same process reused invocation
after invocation. ``run_local`` does both for a list of events::

    from safehandler.testing.runtime_api import LocalRuntimeAPI, run_runtime

    with LocalRuntimeAPI([{"n": 1}, {"n": 2}], timeout=3) as api:
        with run_runtime("app.handler", task_root="src", api=api) as runtime:
            assert api.wait_for(2, timeout=30)
    print([r.body for r in api.results])

What this server knows of the runtime: everything that crosses HTTP, per connection.
awslambdaric's native client keeps one connection open for the life of the process, so a
connection is a runtime process here; its pid is found from the socket (Linux ``/proc``).
An event fetched and never answered is in ``unanswered``; once the connection that fetched
it is closed (the runtime died mid-invocation) it is also in ``lost``: count those as
failed invocations, as Lambda does (``Runtime.ExitError``).

Like a frozen Lambda environment, ``next`` blocks while there is no event, until one is
added or the server stops. Nothing here enforces the function timeout: the deadline is only
announced (``Lambda-Runtime-Deadline-Ms``), and the runtime is stopped when the server is.

The modules, each importing only those before it: ``_records`` (the values), ``_procfs``
(which pid holds a socket), ``_feed`` (the events to serve), ``_http`` (server, handler,
bodies), ``_routes`` (what each route answers and records), ``_server`` (``LocalRuntimeAPI``),
``_managed`` (an emulated ``/var/runtime/bootstrap.py``), ``_process`` (``run_runtime``),
``_local`` (``run_local``).
"""

from __future__ import annotations

from ._local import LocalRun, run_local
from ._process import RuntimeProcess, run_runtime
from ._records import ConnectionInfo, InitError, Invocation, InvocationResult, RuntimeEvent
from ._routes import API_VERSION, MAX_RESPONSE_BYTES
from ._server import LocalRuntimeAPI

__all__ = [
    "API_VERSION",
    "MAX_RESPONSE_BYTES",
    "ConnectionInfo",
    "InitError",
    "Invocation",
    "InvocationResult",
    "LocalRun",
    "LocalRuntimeAPI",
    "RuntimeEvent",
    "RuntimeProcess",
    "run_local",
    "run_runtime",
]
