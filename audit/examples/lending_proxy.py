"""Synthetic mortgage applicants drawn from the census tables: race known, then withheld.

The generator follows the very model BISG/BIFSG assume, so their posteriors
are the true conditional probabilities of each applicant's race (a proxy can
then be judged against the truth):

1. a surname ``s`` from the census surname list, with probabilities tilted so the
   pool's race mix equals ``race_mix`` (default: the national census shares);
2. race ``r`` from the surname table's P(r | s) (Census 2010);
3. a ZIP code (ZCTA) from P(zcta | r) and a first name from P(first name | r)
   (the first-name table; its "all other first names" row becomes a made-up
   name that no table lists), both independent given race.

Then the decisions, with known planted disparities against the ``disadvantaged``
groups (default black and hispanic):

- ``approved``: probability ``base_approval`` (0.70), times ``approval_ratio`` for
  the disadvantaged groups: the true impact ratio is ``approval_ratio``;
- ``credit_score``: normal(700, 50), the legitimate pricing factor;
- ``apr`` (percent, approved applicants only): 6.5 - 0.01 * (credit_score - 700)
  + noise (SD 0.5) + a gap of ``apr_gap`` (0.25 = 25 bp) for the disadvantaged
  groups. With ``apr_gap_via="direct"`` the gap is added to their APR (it survives
  controlling for credit score); with ``"credit_score"`` their credit scores are
  ``apr_gap / 0.01`` points lower instead and nothing is added, so the raw gap is
  the same and controlling for credit score removes it.

``true_race`` is in the returned frame; :func:`write_example` writes it to
``truth.csv`` apart from ``applicants.csv``. Run
``python -m audit.examples.lending_proxy --out my-pool`` after
``biasaudit data fetch --census``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from probes.proxy import RACES, ProxyTables, name_candidates

__all__ = ["APR_SLOPE", "generate_pool", "surname_weights", "write_example"]

APR_BASE = 6.5  # percent, at credit score 700
APR_SLOPE = 0.01  # percentage points of APR per credit-score point
APR_NOISE = 0.5
SCORE_MEAN, SCORE_SD = 700.0, 50.0
_SYLLABLES = ("ka", "lo", "mi", "ru", "ze", "ta", "vi", "no", "sha", "dre", "qu", "bel")


def surname_weights(tables: ProxyTables, race_mix: np.ndarray) -> np.ndarray:
    """Surname probabilities w_s = sum_r λ_r P(r | s) whose race mix sum_s w_s P(r | s)
    is ``race_mix``: exactly when the solution keeps every w_s >= 0, else as close as
    non-negative λ allow (least squares)."""
    s = tables.surname.probs / tables.surname.probs.sum(axis=1, keepdims=True)
    gram = s.T @ s  # gram @ λ is the race mix of w = s @ λ
    target = np.asarray(race_mix, dtype=float) / np.sum(race_mix)
    w = s @ np.linalg.solve(gram, target)
    if (w < 0).any():
        w = s @ nnls(gram, target)[0]
    return w / w.sum()


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows, k) probability matrix."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = np.inf
    return (rng.random(len(probs))[:, None] >= cum).sum(axis=1)


def _made_up_names(rng: np.random.Generator, k: int, taken: Mapping[str, int]) -> np.ndarray:
    out: list[str] = []
    while len(out) < k:
        name = "".join(rng.choice(_SYLLABLES, size=3)).capitalize()
        if not any(c in taken for c in name_candidates(name)):
            out.append(name)
    return np.array(out, dtype=object)


def _geography_and_first_names(
    tables: ProxyTables, race: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    zcta = tables.geographies["zcta"]
    zkeys = np.array(list(zcta.index), dtype=object)
    first = tables.first_name
    if first is None:
        raise ValueError("tables: the first-name table is needed (load_tables(first_names=True))")
    fkeys = np.array(list(first.index), dtype=object)
    fprobs = first.probs if first.other is None else np.vstack([first.probs, first.other])
    zips = np.empty(len(race), dtype=object)
    firsts = np.empty(len(race), dtype=object)
    for j in range(len(RACES)):
        rows = np.flatnonzero(race == j)
        if not len(rows):
            continue
        col = zcta.given_race[:, j]
        zips[rows] = zkeys[rng.choice(len(zkeys), size=len(rows), p=col / col.sum())]
        fcol = fprobs[:, j]
        pick = rng.choice(len(fprobs), size=len(rows), p=fcol / fcol.sum())
        listed = pick < len(fkeys)
        names = np.empty(len(rows), dtype=object)
        names[listed] = [str(k).title() for k in fkeys[pick[listed]]]
        names[~listed] = _made_up_names(rng, int((~listed).sum()), first.index)
        firsts[rows] = names
    return zips, firsts


def generate_pool(
    tables: ProxyTables,
    *,
    n: int = 10_000,
    seed: int = 0,
    race_mix: Mapping[str, float] | None = None,
    disadvantaged: Sequence[str] = ("black", "hispanic"),
    base_approval: float = 0.70,
    approval_ratio: float = 0.80,
    apr_gap: float = 0.25,
    apr_gap_via: Literal["direct", "credit_score"] = "direct",
) -> pd.DataFrame:
    """A seeded applicant pool (see the module docstring); one row per applicant.

    Columns: ``applicant_id``, ``first_name``, ``last_name``, ``zip``, ``true_race``,
    ``credit_score``, ``approved`` (0/1) and ``apr`` (missing when not approved).
    """
    if n < 1:
        raise ValueError(f"n: at least one applicant, got {n}")
    bad = [g for g in disadvantaged if g not in RACES]
    if bad:
        raise ValueError(f"disadvantaged: {bad} unknown; valid: {list(RACES)}")
    if not 0 < base_approval <= 1 or not 0 <= approval_ratio * base_approval <= 1:
        raise ValueError("base_approval and base_approval * approval_ratio must be in (0, 1]")
    if apr_gap_via not in ("direct", "credit_score"):
        raise ValueError(f"apr_gap_via: {apr_gap_via!r}; valid: 'direct', 'credit_score'")
    mix = tables.prior if race_mix is None else np.array([race_mix.get(r, 0.0) for r in RACES])
    rng = np.random.default_rng(seed)
    names = np.array(list(tables.surname.index), dtype=object)
    surname = rng.choice(len(names), size=n, p=surname_weights(tables, mix))
    race = _categorical(rng, tables.surname.probs[surname])
    zips, firsts = _geography_and_first_names(tables, race, rng)
    hit = np.isin(race, [RACES.index(g) for g in disadvantaged])
    score_shift = -apr_gap / APR_SLOPE if apr_gap_via == "credit_score" else 0.0
    score = rng.normal(SCORE_MEAN, SCORE_SD, size=n) + np.where(hit, score_shift, 0.0)
    approved = rng.random(n) < base_approval * np.where(hit, approval_ratio, 1.0)
    direct = apr_gap if apr_gap_via == "direct" else 0.0
    apr = (
        APR_BASE
        - APR_SLOPE * (score - SCORE_MEAN)
        + rng.normal(0.0, APR_NOISE, size=n)
        + np.where(hit, direct, 0.0)
    )
    return pd.DataFrame(
        {
            "applicant_id": np.arange(1, n + 1),
            "first_name": firsts,
            "last_name": [str(s).title() for s in names[surname]],
            "zip": zips,
            "true_race": pd.Categorical.from_codes(race, categories=list(RACES)),
            "credit_score": np.round(score, 1),
            "approved": approved.astype(int),
            "apr": np.where(approved, np.round(apr, 3), np.nan),
        }
    )


def write_example(out_dir: Path, *, n: int = 10_000, seed: int = 0) -> dict[str, Path]:
    """Write ``applicants.csv`` (race withheld) and ``truth.csv`` into ``out_dir``."""
    from audit.sources.census import load_tables

    pool = generate_pool(load_tables(levels=("zcta",)), n=n, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"applicants": out / "applicants.csv", "truth": out / "truth.csv"}
    pool.drop(columns="true_race").to_csv(paths["applicants"], index=False)
    pool[["applicant_id", "true_race"]].to_csv(paths["truth"], index=False)
    return paths


def generate(out_dir: Path, *, seed: int = 0, n: int = 10_000) -> Path:
    """Write the pool and (if absent) ``spec.yaml`` into ``out_dir``; return the spec path."""
    from audit.examples._common import write_spec

    write_example(out_dir, n=n, seed=seed)
    return write_spec("lending-proxy", out_dir=Path(out_dir))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="synthetic applicants from the census tables")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, default=10_000, help="applicants (default 10,000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name, path in write_example(args.out, n=args.n, seed=args.seed).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
