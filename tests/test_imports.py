"""Imports go one way: no module of `rag/` imports one that imports it back, however far
round, and no stage imports a later one.

Every import counts, wherever it stands: at the top of a module, inside a function (an
import put off until first use still ties the two modules together), under
`if TYPE_CHECKING:`. The stage order is written out below; a new module must belong to one
stage, or this test says where to put it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rag"

# Each stage may import itself and the stages above it, never one below. A module
# belongs to the first stage with a prefix naming it or a package holding it.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("shared", ("rag.results", "rag.options", "rag.errors", "rag.markers", "rag.faults",
                "rag.escape")),
    ("ingest", ("rag.ingest",)),
    ("embed", ("rag.embed",)),
    # Ranking over whatever dense index, BM25 and chunk store it is handed (protocols):
    # `Index.search` hands it the index's own, so `index` imports `retrieve`.
    ("retrieve", ("rag.retrieve",)),
    ("index", ("rag.index",)),  # sharded search included (`index.shards`)
    ("scale", ("rag.scale",)),  # indexing on Ray: a `Pipeline` for the index's writer
    ("answering", ("rag.answering",)),
    ("surface", ("rag",)),  # rag/__init__.py: the names `from rag import ...` gives
    ("app", ("rag.app",)),
    ("eval", ("rag.eval",)),
    ("training", ("rag.training",)),  # may import eval (its benchmark) and answering
    ("cli", ("rag.cli", "rag.terminal", "rag.__main__")),  # `rag`: every stage's command
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` that the module `name` imports, anywhere in its `source`."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                sub = f"{origin}.{alias.name}"
                found.add(sub if sub in known else origin)  # a submodule, or a name in one
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path.read_text(encoding="utf-8"), name,
                             path.name == "__init__.py", known)
            for name, path in mods.items()}


def stage_of(module: str) -> int | None:
    """The rank in STAGES of the stage naming `module` or a package holding it (`rag`
    names only rag/__init__.py, not the whole package)."""
    for rank, (_, names) in enumerate(STAGES):
        if module in names or any(module.startswith(n + ".") for n in names if n != "rag"):
            return rank
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of more than one module tied together by imports (Tarjan's strongly
    connected components), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def _round(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One circle through the group's first module (the shortest), to show in a failure."""
    start, members = group[0], set(group)
    came: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(edges[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if w not in came:
                came[w] = v
                todo.append(w)
    return group


def test_the_parser_sees_every_kind_of_import() -> None:
    known = {"rag.index.facade", "rag.index.writer", "rag.index", "rag.scale.shards",
             "rag.retrieve.fusion", "rag.embed.onnx"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from rag.index import writer\n"
        "if TYPE_CHECKING:\n"
        "    from rag.index.facade import Index\n"
        "class C:\n"
        "    def m(self):\n"
        "        from ..scale import shards\n"
        "        import rag.retrieve.fusion as f\n"
        "def g():\n"
        "    def h():\n"
        "        from rag.embed.onnx import OnnxEmbedder\n")
    assert imports_of(source, "rag.index.derived", False, known) == {
        "rag.index.writer", "rag.index.facade", "rag.scale.shards", "rag.retrieve.fusion",
        "rag.embed.onnx"}


def test_the_parser_resolves_relative_imports_and_names_in_modules() -> None:
    source = ("from . import b\n"
              "from .c import thing\n"
              "from .. import top\n"
              "import rag.d.e\n")
    known = {"rag", "rag.pkg", "rag.pkg.b", "rag.pkg.c", "rag.d.e"}
    assert imports_of(source, "rag.pkg.a", False, known) == {
        "rag.pkg.b", "rag.pkg.c", "rag", "rag.d.e"}
    # In a package's __init__, `.` is the package itself.
    assert imports_of("from .b import x\n", "rag.pkg", True, known) == {"rag.pkg.b"}


def test_a_circle_is_found_and_shown_round() -> None:
    edges = {"a": {"b"}, "b": {"c", "a"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert _round(["a", "b", "c"], edges) == ["a", "b", "a"]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert stage_of("rag") == stage_of("rag.answering") + 1
    assert stage_of("rag.index.facade") == stage_of("rag.index")
    assert stage_of("rag.newthing") is None


def test_every_module_has_a_stage() -> None:
    lost = [m for m in modules() if stage_of(m) is None]
    assert not lost, f"put these in a stage of STAGES (tests/test_imports.py): {lost}"


def test_no_module_imports_one_that_imports_it_back() -> None:
    edges = graph()
    found = [f"{' -> '.join(_round(g, edges))}  (tied together: {', '.join(g)})"
             for g in cycles(edges)]
    assert not found, "import circles:\n" + "\n".join(found)


def test_no_stage_imports_a_later_one() -> None:
    upward = []
    for module, targets in sorted(graph().items()):
        mine = stage_of(module)
        for target in sorted(targets):
            theirs = stage_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module} ({STAGES[mine][0]}) imports {target} "
                              f"({STAGES[theirs][0]})")
    assert not upward, ("imports from an earlier stage into a later one (move the shared "
                        "part down, or pass it in):\n" + "\n".join(upward))


def test_no_module_is_over_400_lines() -> None:
    long = {m: n for m, p in modules().items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, f"split these by what their parts do: {long}"
