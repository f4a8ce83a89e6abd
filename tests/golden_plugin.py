"""Opt-in pytest plugin: record every results document the tests compute, normalised.

For refactors that must not change a single number: run the suite before and after with
``BIASAUDIT_GOLDEN_DIR=DIR pytest -p tests.golden_plugin`` and compare the two folders
(``diff -r``). Each test's documents go to ``DIR/<test id>.json`` with ids, timestamps,
versions, the spec's hash and temporary paths replaced by placeholders.

:func:`normalised` is that normal form, for tests that compare two runs' documents:
what differs from run to run is volatile here, once, not left out test by test.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX32 = re.compile(r"\b[0-9a-f]{32}\b")
_TMP = re.compile(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/\"]+")
#: differ from run to run: ids, times, versions, and ``spec_sha256`` (a hash over the
#: spec, whose paths name temporary folders, uploads' names, the ids a service ran with)
_VOLATILE = {
    "id", "started_at", "finished_at", "versions", "git_commit", "created_at", "spec_sha256",
}  # fmt: skip

_current: list[dict[str, Any]] = []


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in _VOLATILE else _normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str):
        return _HEX32.sub("<hex>", _UUID.sub("<uuid>", _TMP.sub("<tmp>", value)))
    return value


def normalised(doc: Any) -> Any:
    """``doc`` (a results document, or any JSON value) as the golden files hold it: every
    volatile key's value replaced by ``"<volatile>"``, UUIDs, 32-hex ids and temporary
    paths in strings by placeholders. A new value; ``doc`` is not changed."""
    return _normalise(doc)


def _wrap(original: Any) -> Any:
    def recorded(*args: Any, **kwargs: Any) -> dict[str, Any]:
        doc = original(*args, **kwargs)
        _current.append(_normalise(doc))
        return doc  # type: ignore[no-any-return]

    recorded.__wrapped__ = original  # type: ignore[attr-defined]
    return recorded


def _patch() -> None:
    import importlib

    for name in ("audit.engine.run", "audit.engine.run"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        original = getattr(mod, "assemble_results", None)
        if original is None or hasattr(original, "__wrapped__"):
            continue
        wrapped = _wrap(original)
        for m in list(sys.modules.values()):
            if getattr(m, "__name__", "").startswith(("audit", "workers")):
                if getattr(m, "assemble_results", None) is original:
                    m.assemble_results = wrapped  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _golden_record(request: pytest.FixtureRequest) -> Iterator[None]:
    out = os.environ.get("BIASAUDIT_GOLDEN_DIR")
    if not out:
        yield
        return
    _patch()
    _current.clear()
    yield
    if _current:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[:200]
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(_current, indent=1, sort_keys=True))
