"""Shared helpers for the bundled examples: spec templates ship next to this file."""

from __future__ import annotations

import shutil
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent


def template_path(name: str) -> Path:
    """The packaged spec template ``<name>.yaml`` (``hiring`` or ``lending``)."""
    path = TEMPLATES / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"example: {name!r} has no spec template; known: hiring, lending")
    return path


def write_spec(name: str, *, out_dir: Path) -> Path:
    """Copy the template to ``out_dir/spec.yaml`` unless a spec is already there (keeps edits)."""
    target = Path(out_dir) / "spec.yaml"
    if not target.exists():
        shutil.copyfile(template_path(name), target)
    return target
