"""Fit the planned candidates in parallel (joblib) within a time budget, reporting progress.

Recipes are fitted in batches of ``2 x n_jobs``; before each batch the search
checks the clock: when the time spent plus the slowest batch so far would pass
the budget, the remaining recipes are skipped (and counted). The candidates
come back in plan order whatever the worker order, so one seed gives one
result when the budget is not reached.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from probes.inference import InferenceCancelled
from probes.lda.candidates import Candidate, CandidateSpec, fit


@dataclass(frozen=True)
class SearchOutcome:
    candidates: list[Candidate]
    tried: int  # recipes fitted
    skipped: int  # recipes left out by the time budget
    failed: list[dict[str, str]]  # recipes whose fit raised (name, error)


def _fit_one(
    spec: CandidateSpec,
    model: object,
    x: pd.DataFrame,
    y: np.ndarray,
    s: np.ndarray,
    excluded: tuple[str, ...],
    seed: int,
) -> list[Candidate] | str:
    try:
        return fit(spec, model, x=x, y=y, sensitive=s, excluded=excluded, seed=seed)
    except (ValueError, TypeError, ArithmeticError) as exc:  # one recipe fails, not the search
        return f"{type(exc).__name__}: {exc}"


def run_search(
    specs: list[CandidateSpec],
    model: object,
    *,
    x: pd.DataFrame,
    y: np.ndarray,
    sensitive: np.ndarray,
    excluded: tuple[str, ...],
    seed: int,
    n_jobs: int | None,
    budget_s: float,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> SearchOutcome:
    """Fit ``specs`` in order, in parallel batches, until done or out of time."""
    jobs = n_jobs if n_jobs and n_jobs > 0 else max(1, os.cpu_count() or 1)
    batch = max(1, 2 * jobs) if jobs > 1 else 1
    start = time.monotonic()
    slowest = 0.0
    results: list[list[Candidate] | str] = []
    i = 0
    while i < len(specs):
        if should_cancel is not None and should_cancel():
            raise InferenceCancelled("lda-search cancelled between candidates")
        if i > 0 and time.monotonic() - start + slowest > budget_s:
            break
        chunk = specs[i : i + batch]
        t0 = time.monotonic()
        args = [(sp, model, x, y, sensitive, excluded, seed) for sp in chunk]
        if jobs == 1:
            results += [_fit_one(*a) for a in args]
        else:
            from joblib import Parallel, delayed

            results += Parallel(n_jobs=jobs)(delayed(_fit_one)(*a) for a in args)
        slowest = max(slowest, time.monotonic() - t0)
        i += len(chunk)
        if progress is not None:
            progress(0.9 * i / len(specs))
    cands: list[Candidate] = []
    failed = []
    for sp, r in zip(specs, results, strict=False):
        if isinstance(r, str):
            failed.append({"name": sp.name, "error": r})
        else:
            cands += r
    return SearchOutcome(
        cands, tried=len(results), skipped=len(specs) - len(results), failed=failed
    )
