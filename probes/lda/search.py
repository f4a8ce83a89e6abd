"""Fit the planned candidates in parallel (joblib) within a time budget, reporting progress.

Recipes are fitted in batches of ``2 x n_jobs``. Each recipe declares its cost
in model fits (a GridSearch fits its grid, an ExponentiatedGradient up to its
iterations); a batch takes about ``max(largest cost, total cost / n_jobs)`` fits
one after another. After the first batch the search knows the time of one fit,
and leaves out every recipe that would not finish within what is left of the
budget (counted as skipped). The candidates come back in plan order whatever
the worker order, so one seed gives one result when the budget is not reached.
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
    w: np.ndarray | None,
) -> list[Candidate] | str:
    try:
        return fit(
            spec, model, x=x, y=y, sensitive=s, excluded=excluded, seed=seed, sample_weight=w
        )
    except (ValueError, TypeError, ArithmeticError) as exc:  # one recipe fails, not the search
        return f"{type(exc).__name__}: {exc}"


def _span(costs: list[int], jobs: int) -> float:
    """Fits one after another that a batch of recipes takes on ``jobs`` workers (about)."""
    return max(max(costs), sum(costs) / jobs)


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
    sample_weight: np.ndarray | None = None,
) -> SearchOutcome:
    """Fit ``specs`` in order, in parallel batches, leaving out what would pass the budget;
    each training row weighed by ``sample_weight`` when given."""
    jobs = n_jobs if n_jobs and n_jobs > 0 else max(1, os.cpu_count() or 1)
    batch = 2 * jobs if jobs > 1 else 1
    start = time.monotonic()
    units: list[float] = []  # seconds per model fit of each batch
    unit: float | None = None  # the slowest after the first batch (which starts the workers)
    done: dict[int, list[Candidate] | str] = {}
    skipped = 0
    for lo in range(0, len(specs), batch):
        if should_cancel is not None and should_cancel():
            raise InferenceCancelled("lda-search cancelled between candidates")
        chunk = list(range(lo, min(lo + batch, len(specs))))
        if unit is not None:  # the first batch (the plain refit) always runs
            left = budget_s - (time.monotonic() - start)
            keep: list[int] = []
            for k in chunk:
                if unit * _span([specs[j].cost for j in [*keep, k]], jobs) <= left:
                    keep.append(k)
            skipped += len(chunk) - len(keep)
            chunk = keep
        if not chunk:
            continue
        t0 = time.monotonic()
        args = [(specs[k], model, x, y, sensitive, excluded, seed, sample_weight) for k in chunk]
        if jobs == 1:
            out = [_fit_one(*a) for a in args]
        else:
            from joblib import Parallel, delayed

            out = Parallel(n_jobs=jobs)(delayed(_fit_one)(*a) for a in args)
        units.append((time.monotonic() - t0) / _span([specs[k].cost for k in chunk], jobs))
        unit = max(units[1:]) if len(units) > 1 else units[0]
        done.update(zip(chunk, out, strict=True))
        if progress is not None:
            progress(0.9 * (lo + batch) / len(specs))
    cands: list[Candidate] = []
    failed = []
    for k in sorted(done):
        r = done[k]
        if isinstance(r, str):
            failed.append({"name": specs[k].name, "error": r})
        else:
            cands += r
    return SearchOutcome(cands, tried=len(done), skipped=skipped, failed=failed)
