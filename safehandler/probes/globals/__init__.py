"""Global state an invocation left changed, and a way to put it back.

Watched: the handler's own module namespaces, and what their functions and classes hold
(mutable defaults, attributes, closure cells, unbounded lru_caches: ``_owned``);
``builtins``; the public callables and classes of the loaded stdlib modules (a replaced
``json.dumps``); ``sys.modules`` replacements; ``os.environ``; ``sys.path``; the handler lists
of the loggers; the working directory; the Python-level signal handlers; the number of atexit
callbacks.

What counts. A global of the handler's modules is one group per (module, attribute): a lazy
initialisation (set once, then left alone) is one resource in its group, which the tracker's
growth rule tolerates; a second rebinding, or a container that grows in invocation after
invocation, is growth. Intended caches are allowed by name (``allow``) or by object
(``allow_global``): their mutation is not reported, only growth in ten consecutive
invocations (the verdicts' streak rule). Everything else is not the handler's to
change: one change is a finding (``verdicts.IMMEDIATE_NOUNS``). New modules imported during an
invocation are not findings: lazy imports are normal. Only changes made during an invocation
count: ``catch_up()`` takes in what the handler's globals became between two invocations. A
name added to a namespace is grouped with every other name added to it (``new_name_change``):
a new name per invocation is one growing group, not a group per name.

Restore puts back only what an invocation added, never a value it replaced (see
``_handler_state.restore_handler``). Watching runs no user code: identities first, reprlib
for the built-in types only, own ``__dict__`` reads, bounded samples (``_handler_state``).

The modules, in import order:

- ``_vendored``: the packages installed beside the handler (``pip install -t .``): libraries;
- ``_watched``: what is watched (the handler's modules, the stdlib modules);
- ``_allow``: the allow-list by object (``allow_global``);
- ``_token``: the snapshot token and its parts;
- one unit per kind of global state, each with its read, diff and restore side by side:
  ``_stdlib`` (builtins, stdlib attributes, ``sys.modules``), ``_handler_state`` (the
  handler's namespaces and their containers), ``_owned`` (what the handler's functions and
  classes hold), ``_environ``, ``_path``, ``_logging``, ``_signals``, ``_cwd``, ``_atexit``;
- ``_probe``: ``GlobalsProbe``, which composes them; loaded when it is first asked for (the
  guard's probes are built at decoration), so that ``import safehandler``, which needs only
  ``allow_global``, does not pay for the units (about 3 ms of cold start).
"""

from __future__ import annotations

from ._allow import allow_global
from ._watched import COMMON_STDLIB, handler_modules

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from ._probe import GlobalsProbe

__all__ = [
    "COMMON_STDLIB",
    "GlobalsProbe",
    "allow_global",
    "handler_modules",
]


def __getattr__(name: str) -> object:  # PEP 562: GlobalsProbe on first use
    if name == "GlobalsProbe":
        from ._probe import GlobalsProbe

        globals()[name] = GlobalsProbe  # found directly from now on
        return GlobalsProbe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
