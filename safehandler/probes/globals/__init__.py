"""Global state an invocation left changed, and a way to put it back.

Watched: the handler's own module namespaces; ``builtins``; the public callables and classes of
the loaded stdlib modules (a replaced ``json.dumps``); ``sys.modules`` replacements;
``os.environ``; ``sys.path``; the handler lists of the loggers; the working directory; the
Python-level signal handlers; the number of atexit callbacks.

What counts. A global of the handler's modules is one group per (module, attribute): a lazy
initialisation (set once, then left alone) is one resource in its group, which the tracker's
growth rule tolerates; a second rebinding, or a container that grows in invocation after
invocation, is growth. Intended caches are allowed by name (``allow``) or by object
(``allow_global``): their mutation is not reported, only growth in ten consecutive
invocations (the verdicts' streak rule). Everything else is not the handler's to
change: one change is a finding (``verdicts.IMMEDIATE_NOUNS``). New modules imported during an
invocation are not findings: lazy imports are normal.

The modules, in import order:

- ``_vendored``: the packages installed beside the handler (``pip install -t .``): libraries;
- ``_watched``: what is watched (the handler's modules, the stdlib modules);
- ``_allow``: the allow-list by object (``allow_global``);
- ``_token``: the snapshot token and its parts;
- one unit per kind of global state, each with its read, diff and restore side by side:
  ``_stdlib`` (builtins, stdlib attributes, ``sys.modules``), ``_handler_state`` (the
  handler's namespaces and their containers), ``_environ``, ``_path``, ``_logging``,
  ``_signals``, ``_cwd``, ``_atexit``;
- ``_probe``: ``GlobalsProbe``, which composes them.
"""

from __future__ import annotations

from ._allow import allow_global
from ._probe import GlobalsProbe
from ._watched import COMMON_STDLIB, handler_modules

__all__ = [
    "COMMON_STDLIB",
    "GlobalsProbe",
    "allow_global",
    "handler_modules",
]
