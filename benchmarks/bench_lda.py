"""The lda-search on 50k training rows x 20 features with a gradient-boosting pipeline.

Synthetic lending data (seeded): 20 numeric features, one of them a proxy of the
protected ``group`` (two levels, 30% minority); the label depends on the other
features. The model in use is ``StandardScaler`` + ``HistGradientBoostingClassifier``
fitted on the 50k training rows (with the proxy); the holdout has 20k rows.

The search runs end to end through ``run_audit`` (embedded mode, nothing stored)
with the configured time budget, and the script prints the wall time against
the budget, the candidates tried and skipped, and the peer: one fit of the same
pipeline on the same rows (the search's cost in model fits).

    python benchmarks/bench_lda.py [--budget 600] [--rows 50000] [--holdout 20000] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(rows) < 0.3, "minority", "majority")
    x = rng.normal(size=(rows, 19))
    logit = x[:, :6] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4, 0.3]) + 0.6
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i:02d}" for i in range(19)])
    frame["proxy"] = (group == "minority") * 1.0 + rng.normal(0, 0.4, rows)
    frame["group"] = group
    frame["repaid"] = y
    return frame


def build(root: Path, rows: int, holdout: int, seed: int) -> tuple[float, list[str]]:
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = make_data(rows + holdout, seed)
    train, hold = data.iloc[:rows].copy(), data.iloc[rows:]
    # biased history: a quarter of the minority's repayments recorded as defaults
    rng = np.random.default_rng(seed + 1)
    flip = (train["group"] == "minority") & (train["repaid"] == 1) & (rng.random(rows) < 0.25)
    train.loc[flip, "repaid"] = 0
    features = [c for c in data.columns if c not in ("group", "repaid")]
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            ("gb", HistGradientBoostingClassifier(max_iter=100, random_state=0)),
        ]
    )
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # as each of the search's parallel fits runs
        t0 = time.perf_counter()
        model.fit(train[features], train["repaid"])
        fit_s = time.perf_counter() - t0
    sio.dump(model, root / "model.skops")
    train.to_csv(root / "train.csv", index=False)
    hold.to_csv(root / "holdout.csv", index=False)
    return fit_s, features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--holdout", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from audit import run_audit

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fit_s, features = build(root, args.rows, args.holdout, args.seed)
        probe = {"kind": "lda-search", "attribute": "group", "train": "train.csv"}
        probe["time_budget_s"] = args.budget
        if args.jobs:
            probe["n_jobs"] = args.jobs
        spec = {
            "name": "bench-lda",
            "domain": "lending",
            "dataset": {"path": "holdout.csv", "label": "repaid", "protected": ["group"]},
            "model": {"kind": "sklearn", "path": "model.skops"},
            "probes": [probe],
        }
        import yaml

        (root / "spec.yaml").write_text(yaml.safe_dump(spec))
        t0 = time.perf_counter()
        results = run_audit(root / "spec.yaml", store=False)
        wall = time.perf_counter() - t0
    (entry,) = results["probes"]
    s = entry["summary"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"rows: train {args.rows}, holdout {args.holdout}, features {len(features)}")
    print(f"peer: one fit of the pipeline (one thread): {fit_s:.2f} s")
    print(f"search: {wall:.1f} s wall for a {args.budget:.0f} s budget ({wall / args.budget:.2f})")
    print(f"search / one fit: {wall / fit_s:.0f}x")
    print(
        f"candidates evaluated: {s['candidates_tried']} (recipes fitted {s['recipes_fitted']}, "
        f"skipped by the budget {s['recipes_skipped_by_budget']}, failed {s['recipes_failed']})"
    )
    base = entry["baseline"]
    print(f"baseline: auc {base['performance']:.4f}, lowest IR {base['min_impact_ratio']:.3f}")
    if entry["best"]:
        b = entry["best"]
        print(
            f"best: {b['name']}: auc {b['performance']:.4f} (loss {b['performance_loss']:.4f}), "
            f"lowest IR {b['min_impact_ratio']:.3f}"
        )
    print(f"top driver: {entry['drivers'][0]['feature'] if entry['drivers'] else None}")
    print("within budget:", wall <= args.budget)


if __name__ == "__main__":
    main()
