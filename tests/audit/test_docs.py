"""Generated documentation is current."""

from __future__ import annotations

from pathlib import Path

from audit.engine.specdoc import render

ROOT = Path(__file__).resolve().parents[2]


def test_spec_reference_is_generated_from_the_models() -> None:
    current = (ROOT / "docs" / "spec.md").read_text()
    assert current == render(), "run: python -m audit.engine.specdoc > docs/spec.md"
    for key in ("dataset.protected", "policy.min_impact_ratio", "### `demographic`"):
        assert key in current
