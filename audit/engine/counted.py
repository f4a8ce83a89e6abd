"""Probe entries from merged counts: the step chunks, shards and push-down share.

Counts of the full intersection of the protected columns (and ``dataset.strata``
for probes that count it) add across chunks, shards and a database's ``GROUP BY``;
each count-based probe derives its entries from their marginals here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from audit.engine.spec import AuditSpec
from audit.errors import AuditInputError
from probes.base import CountContext, ProbeEntry, ProbeError, get_probe
from probes.counts import GroupCounts


def entries_from_total(
    spec: AuditSpec, configs: list[Any], total: GroupCounts | None, *, proxy: Any = None
) -> list[ProbeEntry]:
    """Entries of every count-based probe config from merged full-intersection counts
    (None without protected columns) and, with ``dataset.proxy``, the proxy's input."""
    context = CountContext(
        min_group_size=spec.policy.min_group_size,
        privileged={k: str(v) for k, v in spec.dataset.privileged.items()},
        seed=spec.seed,
        max_groups=spec.policy.max_groups,
        max_total_groups=spec.policy.max_total_groups,
        unknown_label=spec.dataset.unknown_label,
        reference={k: str(v) for k, v in spec.dataset.reference.items()},
        proxy=proxy,
    )
    entries: list[ProbeEntry] = []
    strata = spec.dataset.strata
    counted = () if total is None else total.attributes
    for cfg in configs:
        cls = get_probe(cfg.kind)
        attrs = cls.count_attributes(cfg, spec.dataset.protected)
        ctx = context
        if cls.counts_strata and strata in counted and strata not in attrs:
            attrs, ctx = [*attrs, strata], replace(context, strata=strata)
        counts = None if total is None else total.marginal(attrs)
        try:
            entries += cls().entries_from_counts(counts, config=cfg, context=ctx)
        except ProbeError as exc:  # an input error (privileged value, too many groups)
            raise AuditInputError(str(exc)) from None
    return entries


def count_only(configs: list[Any]) -> bool:
    """True when every probe derives all its metrics from merged counts (chunks, shards)."""
    return bool(configs) and all(get_probe(c.kind).from_counts for c in configs)
