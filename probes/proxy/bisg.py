"""BISG and BIFSG: posterior race/ethnicity probabilities from names and where people live.

BISG (Elliott et al. 2008, 2009; CFPB 2014) combines the census surname table
with a geography table by Bayes' rule, assuming surname and geography are
independent given race::

    P(r | s, g) = P(r | s) P(g | r) / sum_r' P(r' | s) P(g | r')
                = P(r | s) P(r | g) / P(r)   (normalised)

BIFSG (Voicu 2018) multiplies in the first name, assumed independent of both
given race: ``P(r | s, f, g) ∝ P(r | s) P(f | r) P(g | r)``.

When a piece is missing the posterior uses what there is (CFPB practice):

- no surname match: geography only, P(r | g) (times P(f | r) for BIFSG);
- no geography match (blank, not a ZCTA, a tract without population): surname
  only, P(r | s);
- neither: the national shares P(r).

A first name not on the list uses the list's ``ALL OTHER FIRST NAMES`` row; a
blank first name leaves the first-name factor out. If a product is zero for
every race (hard zeros in the tables), the next less informed posterior is
used. ``ProxyResult.coverage`` says how many rows matched what.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from probes.proxy.names import match_keys, match_names
from probes.proxy.tables import RACES, ProxyTableError, ProxyTables

#: per-row evidence the posterior rests on, most informed first
EVIDENCE: tuple[str, ...] = ("surname+geography", "surname", "geography", "national")


class ProxyCoverage(BaseModel):
    """How many rows matched a surname, a geography and (BIFSG) a first name."""

    model_config = ConfigDict(frozen=True)
    method: str
    geography_level: str | None
    rows: int
    surname_matched: int
    surname_matched_by_part: int
    geography_matched: int
    first_name_matched: int | None
    both_matched: int
    surname_only: int
    geography_only: int
    neither: int

    def rate(self, what: str) -> float | None:
        """Share of rows for a count field (None without rows)."""
        count = getattr(self, what)
        return None if not self.rows or count is None else count / self.rows


@dataclass(frozen=True)
class ProxyResult:
    """Posteriors (one row per input row, :data:`RACES` columns) and how they were made."""

    posteriors: pd.DataFrame
    evidence: pd.Categorical  # one of EVIDENCE per row
    first_name_used: np.ndarray  # the first-name factor entered the posterior
    surname_matched: np.ndarray
    geography_matched: np.ndarray
    first_name_matched: np.ndarray | None
    coverage: ProxyCoverage


def _index_of(values: Any) -> pd.Index | None:
    return values.index if isinstance(values, pd.Series) else None


def _geography(
    tables: ProxyTables, geography: Iterable[Any] | None, level: str, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matched, P(g | r) rows, P(r | g) rows) for every input row."""
    if geography is None:
        nan = np.full((n, len(RACES)), np.nan)
        return np.zeros(n, dtype=bool), nan, nan
    if level not in tables.geographies:
        raise ProxyTableError(
            f"geography level {level!r}: no table loaded; loaded: {sorted(tables.geographies)}"
        )
    geo = tables.geographies[level]
    rows = match_keys(geography, geo.index, level=level)
    if len(rows) != n:
        raise ProxyTableError(f"geography: {len(rows)} values for {n} surnames")
    ok = rows >= 0
    ok[ok] = geo.populated[rows[ok]]
    safe = np.where(ok, rows, 0)
    return ok, geo.given_race[safe], geo.race_given[safe]


def _first_name_factor(
    tables: ProxyTables, first_name: Iterable[Any] | None, n: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(factor P(f | r) per row, matched, used) or Nones for BISG."""
    if first_name is None:
        return None, None, None
    table = tables.first_name
    if table is None:
        raise ProxyTableError("bifsg: no first-name table loaded (P(first name | race))")
    m = match_names(first_name, table.index)
    rows, blank = m.rows, m.blank
    if len(rows) != n:
        raise ProxyTableError(f"first_name: {len(rows)} values for {n} surnames")
    matched = rows >= 0
    factor = np.ones((n, len(RACES)))
    factor[matched] = table.probs[rows[matched]]
    unlisted = ~matched & ~blank
    if table.other is not None:
        factor[unlisted] = table.other
    used = matched | (unlisted & (table.other is not None))
    return factor, matched, used


def predict_race(
    tables: ProxyTables,
    *,
    surname: Iterable[Any],
    geography: Iterable[Any] | None = None,
    level: str = "zcta",
    first_name: Iterable[Any] | None = None,
) -> ProxyResult:
    """BISG posteriors, or BIFSG when ``first_name`` is given.

    Parameters
    ----------
    tables : the census tables (:func:`audit.sources.census.load_tables`).
    surname : one surname per row (raw; normalised here).
    geography : one ZIP/ZCTA (``level="zcta"``) or 11-digit tract FIPS code
        (``level="tract"``) per row, or None for surname-only posteriors.
    first_name : one first name per row for BIFSG.
    """
    s_match = match_names(surname, tables.surname.index)
    s_rows = s_match.rows
    n = len(s_rows)
    s_ok = s_rows >= 0
    s_prob = np.where(s_ok[:, None], tables.surname.probs[np.where(s_ok, s_rows, 0)], np.nan)
    g_ok, g_given_r, r_given_g = _geography(tables, geography, level, n)
    factor, f_matched, f_used = _first_name_factor(tables, first_name, n)
    available = (s_ok & g_ok, s_ok, g_ok, np.ones(n, dtype=bool))
    bases = (s_prob * g_given_r, s_prob, r_given_g, np.broadcast_to(tables.prior, s_prob.shape))
    post = np.full((n, len(RACES)), np.nan)
    evidence = np.full(n, -1, dtype=np.int8)
    with_first = np.zeros(n, dtype=bool)
    todo = np.ones(n, dtype=bool)
    # the most informed level each row has, with the first name, then without it; a
    # product that is zero for every race (hard zeros in the tables) moves to the next
    for code in range(len(EVIDENCE)):
        for use_first in (True, False) if factor is not None else (False,):
            rows = todo & available[code]
            if not rows.any():
                continue
            u = bases[code][rows]
            if use_first:
                assert factor is not None and f_used is not None
                u = u * factor[rows]
            z = u.sum(axis=1)
            good = np.isfinite(z) & (z > 0)
            idx = np.flatnonzero(rows)[good]
            post[idx] = u[good] / z[good, None]
            evidence[idx] = code
            if use_first and f_used is not None:
                with_first[idx] = f_used[idx]
            todo[idx] = False
    index = _index_of(surname)
    frame = pd.DataFrame(post, columns=list(RACES), index=index)
    coverage = ProxyCoverage(
        method="bifsg" if factor is not None else "bisg",
        geography_level=level if geography is not None else None,
        rows=n,
        surname_matched=int(s_ok.sum()),
        surname_matched_by_part=int(s_match.by_part.sum()),
        geography_matched=int(g_ok.sum()),
        first_name_matched=None if f_matched is None else int(f_matched.sum()),
        both_matched=int((s_ok & g_ok).sum()),
        surname_only=int((s_ok & ~g_ok).sum()),
        geography_only=int((~s_ok & g_ok).sum()),
        neither=int((~s_ok & ~g_ok).sum()),
    )
    return ProxyResult(
        posteriors=frame,
        evidence=pd.Categorical.from_codes(evidence, categories=list(EVIDENCE)),
        first_name_used=with_first,
        surname_matched=s_ok,
        geography_matched=g_ok,
        first_name_matched=f_matched,
        coverage=coverage,
    )


def concat_results(parts: list[ProxyResult]) -> ProxyResult:
    """The posteriors of consecutive row blocks as one result (chunks of a file).

    Posteriors are computed row by row, so the blocks' results joined equal the
    result of the whole; coverage counts add.
    """
    if not parts:
        raise ValueError("parts: at least one proxy result is needed")
    first = parts[0]
    counts: dict[str, Any] = {}
    for f in ProxyCoverage.model_fields:
        if f not in ("method", "geography_level") and getattr(first.coverage, f) is not None:
            counts[f] = sum(getattr(p.coverage, f) for p in parts)
    fn = [p.first_name_matched for p in parts if p.first_name_matched is not None]
    matched = np.concatenate(fn) if len(fn) == len(parts) else None
    return ProxyResult(
        posteriors=pd.concat([p.posteriors for p in parts], ignore_index=True),
        evidence=pd.Categorical.from_codes(
            np.concatenate([np.asarray(p.evidence.codes) for p in parts]),
            categories=list(EVIDENCE),
        ),
        first_name_used=np.concatenate([p.first_name_used for p in parts]),
        surname_matched=np.concatenate([p.surname_matched for p in parts]),
        geography_matched=np.concatenate([p.geography_matched for p in parts]),
        first_name_matched=matched,
        coverage=first.coverage.model_copy(update=counts),
    )
