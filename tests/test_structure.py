"""The module map holds: every import inside mdxmix points down, and no function is long.

The layers are DESIGN.md's module map, lowest first. A module may import from its own row
or a lower one; the two features in one row (`train`, `evaluate`) never import each other.
Function-local imports count like any other: a lazy import that points down is fine, one
that points up only hides a cycle. Run this file as a script to print the numbers.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mdxmix"

# DESIGN.md's module map, bottom row first: (row name, modules or packages in it).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("names", ("errors", "stems")),
    ("helpers", ("audio", "cache", "weightfiles", "device", "musdb", "shard", "user_registry", "atomic",
                 "hub", "ahead", "pcm_map")),
    ("mixer", ("mixer",)),
    ("upstream", ("upstream",)),
    ("checkpoint", ("checkpoint", "registry", "model_card", "selection")),
    ("pipeline", ("pipeline",)),
    ("features", ("train", "evaluate", "sharing")),
    ("command line", ("cli", "batch", "inputs", "outputs", "models_listing", "models_command", "naming", "inspect_weights",
                      "__main__")),
]
# The package root is a façade outside the rows: it holds `__version__` (read from anywhere) and
# re-exports `Separator` on first attribute access, so `import mdxmix` stays light.
ROOT = "__init__"
# Rows whose members are separate features that share only what lies below them.
FEATURE_ROWS = {"features"}
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _top(module: str) -> str:
    return module.split(".")[0]


def layer_of(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        if _top(module) in members:
            return index
    raise AssertionError(f"mdxmix.{module} is not in the module map; add it to LAYERS (and DESIGN.md)")


def _resolve(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names (without 'mdxmix.') of the mdxmix modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name[len("mdxmix."):] for a in node.names if a.name.startswith("mdxmix.")]
    if node.level == 0:
        if node.module is None or not (node.module == "mdxmix" or node.module.startswith("mdxmix.")):
            return []
        base = node.module[len("mdxmix"):].lstrip(".")
    else:
        package = list(path.relative_to(PACKAGE).parent.parts)
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    if base:
        return [base]
    # `from .. import x` at the package root: a submodule, or a name of the root itself
    return [a.name if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir() else ROOT for a in node.names]


def imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, inside a function) for every import of an mdxmix module."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(path, node):
                    if ROOT in (target, _module_name(path)):
                        continue
                    found.append((_module_name(path), target, node.lineno, id(node) in local))
    return found


def violations() -> dict[str, list[str]]:
    """Upward imports, imports between sibling features, and import cycles between modules."""
    upward, sideways = [], []
    graph: dict[str, set[str]] = {}
    for source, target, line, local in imports():
        where = f"mdxmix.{source}:{line} imports mdxmix.{target}" + (" (inside a function)" if local else "")
        s, t = layer_of(source), layer_of(target)
        if t > s:
            upward.append(where)
        elif t == s and LAYERS[s][0] in FEATURE_ROWS and _top(source) != _top(target):
            sideways.append(where)
        if _top(source) != _top(target):
            graph.setdefault(_top(source), set()).add(_top(target))
    return {"upward": upward, "between features": sideways, "cycles": _cycles(graph)}


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    cycles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start and min(trail) == start:
                    cycles.append(" -> ".join(trail + [start]))
                elif nxt not in trail and nxt > start:
                    stack.append((nxt, trail + [nxt]))
    return cycles


def function_lengths() -> list[tuple[int, str]]:
    """(lines, 'file:function') for every function and method in mdxmix, longest first."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                out.append((node.end_lineno - first + 1, f"{path.relative_to(PACKAGE.parent)}:{node.name}"))
    return sorted(out, reverse=True)


# Exceptions that another branch removes (issue 13 items 2 and 7: write_stems and its sinks leave
# the pipeline; the command line is rewritten). Delete each entry when it no longer applies:
# test_known_exceptions_still_apply says when.
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_LONG: set[str] = set()


def test_every_import_points_down() -> None:
    found = violations()
    upward = [u for u in found["upward"] if not any(f"mdxmix.{a}:" in u and f"imports mdxmix.{b}" in u
                                                     for a, b in KNOWN_UPWARD)]
    assert upward == []
    assert found["between features"] == []
    assert found["cycles"] == []


def test_known_exceptions_still_apply() -> None:
    """A listed exception that no longer occurs must be deleted from its list."""
    edges = {(_top(s), _top(t)) for s, t, _, _ in imports()}
    assert KNOWN_UPWARD <= edges, f"remove {sorted(KNOWN_UPWARD - edges)} from KNOWN_UPWARD"
    long = {name for lines, name in function_lengths() if lines > MAX_FUNCTION_LINES}
    assert KNOWN_LONG <= long, f"remove {sorted(KNOWN_LONG - long)} from KNOWN_LONG"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch) -> None:
    """The analysis is not vacuous: a lower module importing a higher one is reported."""
    package = tmp_path / "mdxmix"
    (package / "mixer").mkdir(parents=True)
    (package / "stems.py").write_text("from .pipeline import Separator\n")
    (package / "pipeline.py").write_text("def f():\n    from .stems import STEMS\n")
    (package / "mixer" / "__init__.py").write_text("def g():\n    from ..checkpoint import x\n")
    (package / "checkpoint.py").write_text("from .mixer import y\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    found = violations()
    assert found["upward"] == ["mdxmix.mixer:2 imports mdxmix.checkpoint (inside a function)",
                               "mdxmix.stems:1 imports mdxmix.pipeline"]
    assert found["cycles"] == ["checkpoint -> mixer -> checkpoint", "pipeline -> stems -> pipeline"]


def test_no_function_is_longer_than_the_limit() -> None:
    longest = [f"{name} ({lines} lines)" for lines, name in function_lengths()
               if lines > MAX_FUNCTION_LINES and name not in KNOWN_LONG]
    assert longest == []


if __name__ == "__main__":
    for kind, items in violations().items():
        print(f"{kind}: {len(items)}")
        for item in items:
            print(f"  {item}")
    print("longest functions:")
    for lines, name in function_lengths()[:8]:
        print(f"  {lines:4d}  {name}")
