"""``dataset.proxy``: BISG / BIFSG posteriors for every row of an in-memory dataset.

The census tables are read from the data folder (``biasaudit data fetch --census``);
nothing is downloaded while an audit runs: missing tables are an input error naming
the command to run.
"""

from __future__ import annotations

import pandas as pd

from audit.engine.spec import DatasetSpec
from audit.errors import AuditInputError
from probes.proxy import ProxyResult, bifsg, bisg


def proxy_posteriors(frame: pd.DataFrame, spec: DatasetSpec) -> ProxyResult | None:
    """The proxy's posteriors (one row per frame row), or None without ``dataset.proxy``."""
    proxy = spec.proxy
    if proxy is None:
        return None
    from audit.sources.census import CensusDataError, load_tables

    level = "tract" if proxy.tract else "zcta"
    try:
        tables = load_tables(levels=(level,), first_names=proxy.method == "bifsg")
    except CensusDataError as exc:
        raise AuditInputError(f"dataset.proxy: {exc}", field="dataset.proxy") from None
    geo_col = proxy.tract or proxy.zcta
    geography = frame[geo_col] if geo_col else None
    if proxy.method == "bifsg" and proxy.first_name:
        return bifsg(
            tables,
            surname=frame[proxy.surname],
            first_name=frame[proxy.first_name],
            geography=geography,
            level=level,
        )
    return bisg(tables, surname=frame[proxy.surname], geography=geography, level=level)
