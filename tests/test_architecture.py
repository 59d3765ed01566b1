"""The import graph of the package: one way, no cycles, production never loads test tooling.

Every import is read from the source (top-level and lazy, inside functions), except those
under ``if TYPE_CHECKING:``, which never run. Each module belongs to one part; a part may
import only the parts listed for it (``../shared/ARCHITECTURE.md``, with the departures its
note gives: Recycle sits below the Engine, which requests the recycle).
"""

from __future__ import annotations

import ast
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "safehandler"

# part -> the modules in it (a trailing "." means the package and everything under it)
PARTS = {
    "records": ("_records", "_constants", "_imports", "_tuple", "_suppress"),
    "errors": ("errors",),
    "redaction": ("_redact", "_warn"),  # the one boundary, and the warnings that pass it
    "settings": ("policy",),
    "scope": ("_scope", "_sites"),
    "probes": ("probes.",),
    "integrations": ("integrations.",),
    "verdicts": ("verdicts", "health"),
    "output": ("report", "_health_state", "_emf", "_fleet", "_fleet_otel"),
    "recycle": ("recycle",),
    "engine": ("_engine",),
    "guard": ("guard",),
    "api": ("__init__", "db"),
    "runtime": ("runtime",),
    "testing": ("testing.",),
    "faces": ("cli", "pytest_plugin", "layer", "__main__", "strategies"),
}
PRODUCTION = ("records", "errors", "redaction", "settings", "scope", "probes", "integrations")
PRODUCTION += ("verdicts", "output", "recycle", "engine", "guard", "api", "runtime")
MAY_IMPORT = {
    "records": set(),
    "errors": set(),
    "redaction": {"records"},
    "settings": {"records", "errors", "redaction"},
    "scope": {"records", "redaction"},
    "probes": {"records", "scope", "redaction"},
    "integrations": {"records", "scope", "redaction"},
    "verdicts": {"records", "settings"},
    "output": {"records", "redaction", "settings"},
    "recycle": {"records", "output", "settings", "redaction"},
    "engine": {
        "records",
        "errors",
        "redaction",
        "settings",
        "scope",
        "probes",
        "integrations",
        "verdicts",
        "output",
        "recycle",
    },
    "guard": {"engine", "settings", "errors", "records"},
    "api": {"guard", "settings", "errors", "records", "probes"},
    "runtime": {"guard", "recycle", "settings", "records", "redaction", "output"},
    "testing": set(PRODUCTION),
    "faces": {*PRODUCTION, "testing"},
}
PRODUCTION_BELOW_TESTING = ("guard", "engine", "probes", "integrations", "verdicts", "output")
PRODUCTION_BELOW_TESTING += ("recycle", "runtime")
# The arrows ARCHITECTURE.md names as never to exist, checked on their own as well.
NEVER = [
    ("errors", set(PARTS)),
    ("probes", {"integrations"}),
    ("verdicts", {"probes", "engine", "output"}),
    *[(part, {"testing", "faces"}) for part in PRODUCTION_BELOW_TESTING],
]
AWSLAMBDARIC_ALLOWED = {"recycle", "runtime"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    for part, members in PARTS.items():
        for member in members:
            if module == member or (member.endswith(".") and module.startswith(member)):
                return part
            if member.endswith(".") and module == member[:-1]:
                return part
    raise AssertionError(f"safehandler.{module} belongs to no part: add it to PARTS")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: ``if TYPE_CHECKING:`` bodies are skipped (their else is not)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


Import = tuple[str, tuple[str, ...]]  # (module, the names taken from it; () for "import m")


def imports_of(path: Path) -> set[Import]:
    """What the module at ``path`` imports, at run time."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if module == "__init__":
        package = []
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: list[str]) -> set[Import]:
    """What ``source``, a module of ``safehandler.<package>``, imports at run time, with
    relative imports made absolute."""
    found: set[Import] = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(["safehandler", *anchor, *([node.module] if node.module else [])])
            found.add((base, tuple(alias.name for alias in node.names)))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports. ``from . import recycle`` imports the module
    ``recycle``; ``from .x import y`` imports ``x`` (and ``x.y`` when that is a module)."""
    modules = {module_name(path) for path in PACKAGE.rglob("*.py")}

    def resolve(name: str) -> str | None:
        if name == "safehandler":
            return "__init__"
        short = name.removeprefix("safehandler.")
        return short if name.startswith("safehandler.") and short in modules else None

    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        targets = set()
        for base, names in imports_of(path):
            submodules = [resolve(f"{base}.{name}") for name in names]
            targets.update(target for target in submodules if target)
            if not names or not all(submodules):
                targets.add(resolve(base) or "")
        edges[module_name(path)] = targets - {module_name(path), ""}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_lazy_imports_and_skips_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import recycle\n"
        "if TYPE_CHECKING:\n"
        "    from .testing import soak\n"
        "else:\n"
        "    from .report import log_event\n"
        "def later():\n"
        "    from .fds import FdProbe\n"
        "    from ..verdicts import Verdict\n"
        "    import awslambdaric.bootstrap\n"
    )
    found = imports_in(source, ["probes"])  # read as safehandler/probes/<something>.py
    assert found == {
        ("typing", ("TYPE_CHECKING",)),
        ("safehandler.probes", ("recycle",)),
        ("safehandler.probes.report", ("log_event",)),
        ("safehandler.probes.fds", ("FdProbe",)),
        ("safehandler.verdicts", ("Verdict",)),
        ("awslambdaric.bootstrap", ()),
    }


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycle_between_modules() -> None:
    assert cycles(graph()) == []


def test_every_module_has_a_part() -> None:
    for module in graph():
        part_of(module)


def test_each_part_imports_only_what_it_may() -> None:
    wrong = [
        f"safehandler.{module} ({part_of(module)}) -> safehandler.{target} ({part_of(target)})"
        for module, targets in sorted(graph().items())
        for target in sorted(targets)
        if part_of(target) != part_of(module) and part_of(target) not in MAY_IMPORT[part_of(module)]
    ]
    assert wrong == []


@pytest.mark.parametrize(("part", "forbidden"), NEVER, ids=[part for part, _ in NEVER])
def test_arrows_that_must_never_exist(part: str, forbidden: set[str]) -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        if part_of(module) == part
        for target in targets
        if part_of(target) in forbidden and part_of(target) != part
    ]
    assert wrong == []


def test_only_recycle_and_the_runtime_entry_know_awslambdaric() -> None:
    knowing = sorted(
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if any(name.split(".")[0] == "awslambdaric" for name, _ in imports_of(path))
    )
    assert {part_of(module) for module in knowing} <= AWSLAMBDARIC_ALLOWED
    assert knowing  # the reader does see them


def test_no_module_is_over_600_lines() -> None:
    long = {
        module_name(path): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 600
        and path.name != "strategies.py"
    }
    assert long == {}


def test_the_engine_names_no_probe() -> None:
    """No probe class, no isinstance on one, no probe name in the engine's code."""
    source = (PACKAGE / "_engine.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    strings = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    probe_names = {"fds", "threads", "processes", "db", "globals", "memory"}
    assert strings & probe_names == set()
    assert not any(name.endswith("Probe") and name != "Probe" for name in names)
    assert "isinstance" not in names


def test_the_layer_ships_no_test_tooling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safehandler import layer

    # Build the layer with its dependencies left out: the package's own files are the subject.
    monkeypatch.setattr(layer, "_install_dependencies", lambda *args: None)
    built = layer.build_layer(tmp_path)
    with zipfile.ZipFile(built) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("python/safehandler/")}
    modules = {name.removeprefix("python/safehandler/") for name in shipped}
    assert "__init__.py" in modules
    assert "runtime.py" in modules
    assert "_engine.py" in modules
    leaked = sorted(
        name
        for name in modules
        if name.startswith("testing/")
        or name in {"cli.py", "pytest_plugin.py", "layer.py", "__main__.py", "strategies.py"}
    )
    assert leaked == []
    # and what it ships imports none of what it leaves out
    for name in modules:
        if name.endswith(".py"):
            module = module_name(PACKAGE / name)
            assert part_of(module) in PRODUCTION, name
