"""published-rates: re-judge the selection rates a vendor published, without a dataset.

A third-party probe that declares no result models (results.json falls back to the
permissive ones), reads no dataset and calls no model: its config carries the
published counts (e.g. an NYC LL144 bias-audit summary).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from probes.base import (
    Check,
    Probe,
    ProbeConfig,
    ProbeEntry,
    ProbeInput,
    ProbeResult,
    register_probe,
)


class PublishedGroup(BaseModel):
    n: int = Field(gt=0)
    selected: int = Field(ge=0)


class PublishedRatesConfig(ProbeConfig):
    kind: Literal["published-rates"] = "published-rates"
    attribute: str
    groups: dict[str, PublishedGroup] = Field(min_length=1)


@register_probe("published-rates", kind="group", tags=("decisions",))
class PublishedRatesProbe(Probe):
    """Selection-rate gaps of published per-group counts (no dataset, no model)."""

    config_model = PublishedRatesConfig
    title = "Published selection rates"
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

    @classmethod
    def uses_dataset(cls, raw: Mapping[str, Any]) -> bool:
        return False

    @classmethod
    def uses_protected(cls, raw: Mapping[str, Any]) -> bool:
        return False

    def run(self, *, data: ProbeInput, model: Any = None, config: Any) -> ProbeResult:
        rates = {name: g.selected / g.n for name, g in config.groups.items()}
        best = max(rates.values())
        groups = [
            {
                "group": name,
                "n": g.n,
                "selection_rate": rates[name],
                "selection_gap": best - rates[name],
            }
            for name, g in config.groups.items()
        ]
        entry = ProbeEntry(kind=self.name, attribute=config.attribute, groups=groups, summary={})
        return ProbeResult(entries=[entry])
