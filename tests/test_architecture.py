"""The architecture rules of docs/architecture.md, checked on the source tree.

- ``audit/`` (engine, API, storage, reports) never imports ``workers/``;
- no probe kind is switched on outside ``probes/``: probes own their checks, titles,
  layouts and count hooks, and the rest of the code asks the registry;
- modules stay within 400 lines and functions within 80. The few that do not are
  listed below with their size today: the list may only shrink (a listed one may not
  grow, and one brought under the limit must leave the list).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.engine.spec import AuditSpec
from probes.base import list_probes

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("audit", "probes", "workers")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Known exceptions (path -> lines today; "path:function" -> lines today). Shrink only.
MODULES_OVER: dict[str, int] = {}
FUNCTIONS_OVER: dict[str, int] = {}


def _sources(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def test_audit_never_imports_workers() -> None:
    found = []
    for rel, tree in _sources("audit"):
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            line = getattr(node, "lineno", 0)
            found += [f"{rel}:{line} {n}" for n in names if n.split(".")[0] == "workers"]
    assert found == []


def _constants(node: ast.AST) -> Iterator[ast.Constant]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for elt in node.elts:
            yield from _constants(elt)


def test_no_probe_kind_is_switched_on_outside_probes() -> None:
    kinds = set(list_probes())
    assert {"demographic", "counterfactual-text", "lda-search"} <= kinds
    # a kind that is also a spec section ("dataset") is only suspect inside a comparison
    sections = kinds & set(AuditSpec.model_fields)
    found = []
    for rel, tree in _sources("audit", "workers"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for operand in (node.left, *node.comparators):
                    found += [
                        f"{rel}:{c.lineno} compares with {c.value!r}"
                        for c in _constants(operand)
                        if c.value in kinds
                    ]
            elif isinstance(node, ast.Constant) and node.value in kinds - sections:
                found.append(f"{rel}:{node.lineno} names {node.value!r}")
    assert sorted(set(found)) == []


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for rel, tree in _sources(*PACKAGES):
        modules[rel] = len((ROOT / rel).read_text(encoding="utf-8").splitlines())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                key, n = f"{rel}:{node.name}", node.end_lineno - node.lineno + 1
                functions[key] = max(n, functions.get(key, 0))  # same name twice: the longer
    return modules, functions


@pytest.mark.parametrize("kind", ["module", "function"])
def test_sizes_stay_within_the_limits_and_the_exceptions_only_shrink(kind: str) -> None:
    modules, functions = _sizes()
    sizes, known, limit = (
        (modules, MODULES_OVER, MAX_MODULE_LINES)
        if kind == "module"
        else (functions, FUNCTIONS_OVER, MAX_FUNCTION_LINES)
    )
    over = {name: n for name, n in sizes.items() if n > limit}
    new = {name: n for name, n in over.items() if name not in known}
    grown = {
        name: (n, known[name]) for name, n in over.items() if name in known and n > known[name]
    }
    fixed = sorted(name for name in known if sizes.get(name, 0) <= limit)
    assert new == {}, f"{kind}s over {limit} lines: split them"
    assert grown == {}, f"listed {kind}s grew (now, listed)"
    assert fixed == [], f"now within {limit} lines: remove from the list"
