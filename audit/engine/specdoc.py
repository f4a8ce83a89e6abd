"""Generate docs/spec.md from the pydantic models (the spec validates against them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from audit.engine.spec import AuditSpec, DatasetSpec, ModelSpec, PolicySpec

HEADER = """# Audit spec reference

Generated from the pydantic models by `python -m audit.engine.specdoc > docs/spec.md`
(a test checks that this file is current). A spec is YAML or JSON; unknown keys
are errors, and every error names its field path (e.g. `probes[0].attributes`).
Relative paths are resolved against the spec file's folder.

## Rules checked before an audit runs

Every error is reported at once (the CLI prints one per line and exits 2; the
API answers 422 with all of them in `errors`), each with its field path, and a
misspelt key or column name gets a "did you mean" suggestion.

- **The label column must contain the favorable value.** With `dataset.label`
  set, at least one row's label must equal `dataset.favorable_label` (one of
  them, for a list; after the canonical comparison: `1`, `"1"`, `1.0` and `true`
  are the same value); otherwise no one is "qualified" and TPR, FPR, precision
  are undefined. The error lists the values seen.
- Every column the spec names (`dataset.protected`, `label`, `prediction`,
  `score`, `strata`, `weight`, the `dataset.proxy` columns) must exist in the
  data; every missing one is named.
- `dataset.protected` needs at least one column when a probe compares groups of
  the dataset (`demographic`, `dataset`, `outcome-disparity`,
  `counterfactual-tabular`), unless `dataset.proxy` is set; model probes that
  bring their own groups (`counterfactual-text` with a `text_column`,
  `pairwise-choice`, ...) need none.
- A dataset (`dataset.path`, or `dataset.id` via the API, or `data=` in Python)
  is needed unless every probe brings its own inputs (templates, pair sets).
- Each protected column needs at least two observed groups; predictions and
  labels may not be missing.
"""


def _type(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    for noise in ("<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        return f"`{field.default!r}`"
    if field.default_factory is not None:
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            return "(see below)"
        try:
            return f"`{field.default_factory()!r}`"
        except TypeError:
            return "(computed)"
    return "**required**"


def table(model: type[BaseModel], prefix: str) -> str:
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("\n", " ")
        rows.append(
            f"| `{prefix}{name}` | {_type(field.annotation)} | {_default(field)} | {desc} |"
        )
    return "\n".join(rows)


def threshold_table() -> str:
    """The thresholds the probes declare (``policy.<name>``), with the checks using each."""
    from probes import get_probe, list_probes
    from probes.base import policy_thresholds

    users: dict[str, list[str]] = {}
    for name in list_probes():
        for check in get_probe(name).checks:
            entry = f"`{name}` {check.metric}"
            if entry not in users.setdefault(check.threshold, []):
                users[check.threshold].append(entry)
    rows = []
    for key, check in policy_thresholds().items():
        rows.append(
            f"| `policy.{key}` | float \\| None | `{check.default!r}` | {check.description} "
            f"({'at least' if check.direction == 'min' else 'at most'}; used by "
            f"{', '.join(users.get(key, []))}) |"
        )
    return "\n".join(rows)


def render() -> str:
    from probes import get_probe, list_probes

    parts = [HEADER, "## Top level\n", table(AuditSpec, "")]
    for title, model, prefix in (
        ("dataset", DatasetSpec, "dataset."),
        ("model", ModelSpec, "model."),
        ("policy", PolicySpec, "policy."),
    ):
        parts += [f"\n## {title}\n", table(model, prefix)]
        if model is PolicySpec:
            parts.append(threshold_table())
    parts.append("\n## probes\n\nEach item of `probes` has a `kind`; its other keys are:\n")
    for name in list_probes():
        cls = get_probe(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        parts += [f"\n### `{name}`\n", doc[0] if doc else "", "", table(cls.config_model, "")]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
