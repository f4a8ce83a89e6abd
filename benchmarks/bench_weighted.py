"""Weighted versus unweighted demographic probe: counts + 1,000 bootstrap replicates,
and the score metrics (AUC, calibration, scoring rate, KS), on the same rows.

The weighted bootstrap is the Poisson bootstrap drawn per cell from the weighted counts,
so its cost, like the multinomial's, does not grow with the rows; the weighted score
metrics sort each group's scores once (``np.unique``) instead of ranking them.

    python benchmarks/bench_weighted.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from probes.base import ProbeInput
from probes.demographic import DemographicConfig, DemographicProbe


def _best(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    frame = pd.DataFrame(
        {
            "race": pd.Categorical(rng.choice(["a", "b", "c", "d", "e"], n)),
            "sex": pd.Categorical(rng.choice(["f", "m"], n)),
        }
    )
    score = np.round(rng.random(n), 3)
    y_true = rng.random(n) < score
    y_pred = score > 0.5
    weight = rng.uniform(0.2, 5.0, n)
    cfg = DemographicConfig(bootstrap=1000, intersectional=True)

    def run(w: np.ndarray | None, with_score: bool) -> None:
        data = ProbeInput(
            frame=frame,
            protected=("race", "sex"),
            y_pred=y_pred,
            y_true=y_true,
            score=score if with_score else None,
            weight=w,
        )
        DemographicProbe().run(data=data, config=cfg)

    rows = []
    for label, with_score in (("counts + 1,000 bootstrap", False), ("+ score metrics", True)):
        plain = _best(lambda s=with_score: run(None, s))
        weighted = _best(lambda s=with_score: run(weight, s))
        rows.append((label, plain, weighted))
    print(f"rows {n:,}")
    for label, plain, weighted in rows:
        print(
            f"{label}: unweighted {plain:.2f} s, weighted {weighted:.2f} s, "
            f"ratio {weighted / plain:.2f}"
        )


if __name__ == "__main__":
    main()
