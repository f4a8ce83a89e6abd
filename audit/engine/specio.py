"""Reading a spec: a YAML/JSON file (or a mapping as given) and the folder paths start at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from audit.errors import SpecError

__all__ = ["load_spec_source"]


def load_spec_source(source: dict[str, Any] | str | Path) -> tuple[dict[str, Any], Path]:
    """The spec as a mapping (read from a YAML/JSON file, or as given) and its base dir."""
    base = Path.cwd()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise SpecError([("spec", f"file not found: {path}")])
        text = path.read_text(encoding="utf-8")
        base = path.resolve().parent
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise SpecError([("spec", f"{path} is not valid YAML/JSON{where}: {exc}")]) from None
    else:
        data = source
    if not isinstance(data, dict):
        raise SpecError([("spec", "the spec must be a mapping (YAML/JSON object)")])
    return data, base
