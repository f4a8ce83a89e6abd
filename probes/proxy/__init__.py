"""Race/ethnicity proxies for fair-lending analysis when race was not collected.

A pure library (arrays and DataFrames in, arrays and DataFrames out):

- :func:`predict_race` (:func:`bisg`, :func:`bifsg`): posterior probabilities of
  the six census categories per row from surname, geography and first name;
- :func:`draw_races`, :func:`rubin`: multiple imputation of race from the
  posteriors and Rubin's rules to combine the estimates;
- :func:`assign_by_threshold`: the posterior >= 0.8 assignment, for comparison.

The census tables come from :func:`audit.sources.census.load_tables`.

>>> from audit.sources.census import load_tables          # doctest: +SKIP
>>> result = bisg(load_tables(), surname=["Garcia"], geography=["63144"])  # doctest: +SKIP
>>> result.posteriors.round(3).iloc[0].to_dict()           # doctest: +SKIP
{'white': 0.294, 'black': 0.004, 'hispanic': 0.615, 'api': 0.074, 'native': 0.003, ...}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from probes.proxy.bisg import EVIDENCE, ProxyCoverage, ProxyResult, concat_results, predict_race
from probes.proxy.imputation import (
    UNASSIGNED,
    RubinResult,
    assign_by_threshold,
    draw_races,
    imputed_labels,
    rubin,
)
from probes.proxy.names import (
    SUFFIXES,
    match_names,
    name_candidates,
    normalize_name,
    normalize_tract,
    normalize_zcta,
)
from probes.proxy.tables import (
    GEO_LEVELS,
    RACES,
    GeoTable,
    NameTable,
    ProxyTableError,
    ProxyTables,
    national_prior,
)

__all__ = [
    "EVIDENCE",
    "GEO_LEVELS",
    "RACES",
    "SUFFIXES",
    "UNASSIGNED",
    "GeoTable",
    "NameTable",
    "ProxyCoverage",
    "ProxyResult",
    "ProxyTableError",
    "ProxyTables",
    "RubinResult",
    "assign_by_threshold",
    "bifsg",
    "bisg",
    "concat_results",
    "draw_races",
    "imputed_labels",
    "match_names",
    "name_candidates",
    "national_prior",
    "normalize_name",
    "normalize_tract",
    "normalize_zcta",
    "predict_race",
    "rubin",
]


def bisg(
    tables: ProxyTables,
    *,
    surname: Iterable[Any],
    geography: Iterable[Any] | None,
    level: str = "zcta",
) -> ProxyResult:
    """BISG: P(r | surname, geography) ∝ P(r | surname) P(geography | r)."""
    return predict_race(tables, surname=surname, geography=geography, level=level)


def bifsg(
    tables: ProxyTables,
    *,
    surname: Iterable[Any],
    first_name: Iterable[Any],
    geography: Iterable[Any] | None,
    level: str = "zcta",
) -> ProxyResult:
    """BIFSG: P(r | s, f, g) ∝ P(r | s) P(f | r) P(g | r) (Voicu 2018)."""
    return predict_race(
        tables, surname=surname, geography=geography, level=level, first_name=first_name
    )
