"""What both modes of the counterfactual-tabular probe share.

The label of missing protected values and the entry keys beyond ProbeEntry's
declared fields (finite floats come from :func:`probes.util.finite_or_none`).
Not a probe: it registers nothing.
"""

from __future__ import annotations

from typing import Any

UNKNOWN = "unknown"


def entry_extra(
    reference: str | None, pairs: list[Any], examples: list[Any], values: list[str]
) -> dict[str, Any]:
    """The entry keys beyond ProbeEntry's declared fields (results.json §4b)."""
    return {"reference_group": reference, "pairs": pairs, "examples": examples, "values": values}
