"""The census tables BISG and BIFSG read, held as arrays in one race order.

Nothing here reads files: :mod:`audit.sources.census` fetches and parses the
Census 2010 tables and builds a :class:`ProxyTables` with
:meth:`ProxyTables.from_frames`; tests build tiny ones the same way.

- surname table: P(race | surname), one row per normalised surname;
- first-name table (BIFSG): P(first name | race), columns summing to 1 over the
  names, with a row for names not on the list (``ALL OTHER FIRST NAMES``);
- geography tables, per level (``zcta`` or ``tract``): P(geography | race),
  columns summing to 1 over the geographies, and P(race | geography), rows
  summing to 1 (NaN for geographies without population);
- the national shares P(race), derived from a geography level's two tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

#: Proxy race/ethnicity categories. All but ``hispanic`` are non-Hispanic; ``api`` is
#: Asian or Pacific Islander, ``native`` American Indian or Alaska Native, ``multiple``
#: two or more races.
RACES: tuple[str, ...] = ("white", "black", "hispanic", "api", "native", "multiple")
GeoLevel = Literal["zcta", "tract"]
GEO_LEVELS: tuple[str, ...] = ("zcta", "tract")


class ProxyTableError(ValueError):
    """A table lacks a race column, or holds negative or non-finite probabilities."""


def race_matrix(frame: pd.DataFrame, *, what: str) -> np.ndarray:
    """The RACES columns of ``frame`` as a float array (missing cells stay NaN)."""
    missing = [r for r in RACES if r not in frame.columns]
    if missing:
        raise ProxyTableError(
            f"{what}: columns {missing} are missing; a table needs the columns {list(RACES)}"
        )
    values = frame[list(RACES)].to_numpy(dtype=float)
    if (values[np.isfinite(values)] < 0).any():
        raise ProxyTableError(f"{what}: probabilities must be non-negative")
    return values


@dataclass(frozen=True)
class NameTable:
    """Probabilities per normalised name; ``other`` is the row for names not on the list."""

    index: Mapping[str, int]
    probs: np.ndarray
    other: np.ndarray | None = None

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, *, what: str, other_key: str | None = None
    ) -> NameTable:
        """Rows indexed by normalised name (``frame.index``); ``other_key`` names the
        catch-all row, which is taken out of the lookup."""
        probs = race_matrix(frame, what=what)
        if not np.isfinite(probs).all():
            raise ProxyTableError(f"{what}: every cell must be a finite probability")
        keys = frame.index.astype(str)
        other = None
        if other_key is not None:
            hit = np.asarray(keys == other_key)
            if hit.any():
                other = probs[np.argmax(hit)].copy()
                probs, keys = probs[~hit], keys[~hit]
        if not keys.is_unique:
            raise ProxyTableError(f"{what}: names must be unique")
        index = dict(zip(keys.tolist(), range(len(keys)), strict=True))
        return cls(index=index, probs=probs, other=other)

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class GeoTable:
    """One geography level: P(geography | race) and P(race | geography) per key."""

    level: str
    index: Mapping[str, int]
    given_race: np.ndarray  # P(g | r): columns sum to 1 over the geographies
    race_given: np.ndarray  # P(r | g): rows sum to 1; NaN without population
    populated: np.ndarray  # geographies with people (usable)

    @classmethod
    def from_frames(
        cls,
        given_race: pd.DataFrame,
        race_given: pd.DataFrame | None = None,
        *,
        level: str,
        prior: np.ndarray | None = None,
    ) -> GeoTable:
        """Both frames indexed by the geography key; without ``race_given``,
        P(r | g) is derived as P(g | r) P(r) / sum, which needs ``prior``."""
        g_r = np.nan_to_num(race_matrix(given_race, what=f"{level} P(geography|race)"))
        keys = given_race.index.astype(str)
        if race_given is None:
            if prior is None:
                raise ProxyTableError(f"{level}: P(race|geography) or national shares needed")
            u = g_r * np.asarray(prior, dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                r_g = u / u.sum(axis=1, keepdims=True)
        else:
            aligned = race_given.reindex(given_race.index)
            r_g = race_matrix(aligned, what=f"{level} P(race|geography)")
        populated = (g_r.sum(axis=1) > 0) & np.isfinite(r_g).all(axis=1) & (r_g.sum(axis=1) > 0)
        r_g = np.where(populated[:, None], r_g, np.nan)
        if not keys.is_unique:
            raise ProxyTableError(f"{level}: geography keys must be unique")
        index = dict(zip(keys.tolist(), range(len(keys)), strict=True))
        return cls(level=level, index=index, given_race=g_r, race_given=r_g, populated=populated)

    def __len__(self) -> int:
        return len(self.index)


def national_prior(geo: GeoTable) -> np.ndarray:
    """P(race) implied by a level's two tables.

    At every geography P(r | g) / P(g | r) = P(r) / P(g); normalising that ratio over
    the races gives P(r). The median over the geographies where every cell is positive
    is returned (the census tables agree to 1e-15).
    """
    ok = geo.populated & (geo.given_race > 0).all(axis=1) & (geo.race_given > 0).all(axis=1)
    if not ok.any():
        raise ProxyTableError(f"{geo.level}: no geography has people of every race")
    ratio = geo.race_given[ok] / geo.given_race[ok]
    ratio /= ratio.sum(axis=1, keepdims=True)
    prior = np.median(ratio, axis=0)
    return np.asarray(prior / prior.sum())


@dataclass(frozen=True)
class ProxyTables:
    """Everything BISG/BIFSG need, in :data:`RACES` order."""

    surname: NameTable
    geographies: Mapping[str, GeoTable]
    prior: np.ndarray
    first_name: NameTable | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_frames(
        cls,
        *,
        surname: pd.DataFrame,
        geographies: Mapping[str, tuple[pd.DataFrame, pd.DataFrame | None]],
        first_name: pd.DataFrame | None = None,
        prior: np.ndarray | None = None,
        surname_other: str | None = "ALL OTHER NAMES",
        first_name_other: str | None = "ALL OTHER FIRST NAMES",
        sources: Mapping[str, str] | None = None,
    ) -> ProxyTables:
        """Build from frames indexed by key with the :data:`RACES` columns.

        ``geographies`` maps a level (``zcta``, ``tract``) to ``(P(g|r), P(r|g))``.
        ``prior`` defaults to :func:`national_prior` of the ZCTA tables (else of the first
        level that has both tables).
        The surname table's catch-all row (``ALL OTHER NAMES``) is kept out of the
        lookup: an unlisted surname falls back to the geography (Elliott et al.; CFPB).
        """
        bad = [lv for lv in geographies if lv not in GEO_LEVELS]
        if bad:
            raise ProxyTableError(f"geography levels {bad} unknown; valid: {list(GEO_LEVELS)}")
        geos: dict[str, GeoTable] = {}
        # the national shares from the ZCTA tables when there are (they cover the surname
        # list's population best), else from the first level with both tables
        ordered = sorted(geographies.items(), key=lambda kv: kv[0] != "zcta")
        for level, (given, race_given) in ordered:
            if race_given is not None:
                geos[level] = GeoTable.from_frames(given, race_given, level=level)
                if prior is None:
                    prior = national_prior(geos[level])
        if prior is None:
            raise ProxyTableError("national shares: pass prior= or a P(race|geography) table")
        prior = np.asarray(prior, dtype=float)
        if prior.shape != (len(RACES),) or (prior < 0).any() or prior.sum() <= 0:
            raise ProxyTableError(f"prior: {len(RACES)} non-negative shares needed, in {RACES}")
        prior = prior / prior.sum()
        for level, (given, race_given) in geographies.items():
            if race_given is None:
                geos[level] = GeoTable.from_frames(given, None, level=level, prior=prior)
        return cls(
            surname=NameTable.from_frame(surname, what="surname", other_key=surname_other),
            geographies=geos,
            prior=prior,
            first_name=None
            if first_name is None
            else NameTable.from_frame(first_name, what="first name", other_key=first_name_other),
            sources=dict(sources or {}),
        )
