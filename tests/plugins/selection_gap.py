"""selection-gap: how far each group's selection rate falls below the highest group's.

A third-party probe: one module, registered under the entry-point group
``biasaudit.probes``; biasaudit itself knows nothing about it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from probes.base import (
    Check,
    CountContext,
    Probe,
    ProbeConfig,
    ProbeEntry,
    ProbeError,
    ProbeExample,
    ProbeInput,
    ProbeResult,
    register_probe,
)
from probes.counts import GroupCounts, count_groups, rates
from probes.result_models import ResultGroup, ResultSummary


class SelectionGapConfig(ProbeConfig):
    kind: Literal["selection-gap"] = "selection-gap"
    attributes: list[str] | None = None  # default: dataset.protected


class SelectionGapGroup(ResultGroup):
    n: float
    selected: float
    selection_rate: float | None
    selection_gap: float | None  # highest selection rate minus this group's


class SelectionGapSummary(ResultSummary):
    largest_gap: float | None
    highest_group: str


def _example_input() -> ProbeInput:
    frame = pd.DataFrame({"sex": pd.Categorical(["f"] * 50 + ["m"] * 50)})
    y_pred = np.array([True] * 20 + [False] * 30 + [True] * 30 + [False] * 20)
    return ProbeInput(frame=frame, protected=("sex",), y_pred=y_pred)


def _example_properties(result: ProbeResult) -> dict[str, bool]:
    (entry,) = result.entries
    gaps = {g["group"]: g["selection_gap"] for g in entry.groups}
    return {
        "one entry, for sex": entry.attribute == "sex",
        "f selected 0.4, m 0.6: f's gap is 0.2": abs(gaps["f"] - 0.2) < 1e-12,
        "the highest group has no gap": gaps["m"] == 0.0,
    }


@register_probe("selection-gap", kind="group", tags=("decisions", "counts"))
class SelectionGapProbe(Probe):
    """Gap between each group's selection rate and the highest group's (from counts)."""

    config_model = SelectionGapConfig
    title = "Selection-rate gap"
    checks = (
        Check(
            "selection_gap",
            "max_selection_gap",
            0.1,
            "max",
            "largest gap tolerated below the highest group's selection rate",
            p_value=None,
            ge=0,
            le=1,
        ),
    )
    from_counts = True  # counts add: chunked reads and sharded workers merge them
    group_model = SelectionGapGroup
    summary_model = SelectionGapSummary
    example = ProbeExample(
        config={"kind": "selection-gap"},
        inputs=_example_input,
        properties=_example_properties,
    )

    def entries_from_counts(
        self, counts: GroupCounts | None, *, config: Any, context: CountContext
    ) -> list[ProbeEntry]:
        if counts is None:  # no protected column was counted
            return []
        entries = []
        for attribute in counts.attributes:
            keys, cells = counts.marginal([attribute]).flat()
            r = rates(cells)
            rate = r["selection_rate"]
            best = int(np.nanargmax(rate))
            groups = [
                {
                    "group": key[0],
                    "n": float(r["n"][i]),
                    "selected": float(r["selected"][i]),
                    "selection_rate": float(rate[i]),
                    "selection_gap": float(rate[best] - rate[i]),
                }
                for i, key in enumerate(keys)
            ]
            summary = {
                "largest_gap": float(np.nanmax(rate[best] - rate)),
                "highest_group": keys[best][0],
            }
            entries.append(
                ProbeEntry(kind=self.name, attribute=attribute, groups=groups, summary=summary)
            )
        return entries

    def run(self, *, data: ProbeInput, model: Any = None, config: Any) -> ProbeResult:
        if data.y_pred is None:
            raise ProbeError("dataset.prediction: the selection-gap probe needs predicted labels")
        attributes = self.count_attributes(config, data.protected)
        counts = count_groups(data.frame, attributes, y_pred=data.y_pred, weight=data.weight)
        return ProbeResult(
            entries=self.entries_from_counts(counts, config=config, context=CountContext())
        )
