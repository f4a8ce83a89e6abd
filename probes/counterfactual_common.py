"""What both modes of the counterfactual-tabular probe share.

The label of missing protected values, finite floats for results.json, and the
entry keys beyond ProbeEntry's declared fields. Not a probe: it registers nothing.
"""

from __future__ import annotations

import math
from typing import Any

UNKNOWN = "unknown"


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _extra(
    reference: str | None, pairs: list[Any], examples: list[Any], values: list[str]
) -> dict[str, Any]:
    """The entry keys beyond ProbeEntry's declared fields (results.json §4b)."""
    return {"reference_group": reference, "pairs": pairs, "examples": examples, "values": values}
