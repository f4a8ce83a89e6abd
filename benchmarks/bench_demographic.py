"""Demographic audit vs fairlearn's MetricFrame on the same by-group metrics.

Prints, for each size: our whole probe time (counts, every rate, CIs, p-values,
Holm, intersections), the time with 1,000 bootstrap replicates, fairlearn
MetricFrame computing the same by-group metrics, the speed-up, and peak memory
(tracemalloc) against the size of the input columns.

    python benchmarks/bench_demographic.py [--rows 1000000 10000000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from probes import ProbeInput
from probes.demographic import DemographicConfig, DemographicProbe


def make_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sex": pd.Categorical.from_codes(rng.integers(0, 2, rows), ["female", "male"]),
            "race": pd.Categorical.from_codes(
                rng.choice(5, rows, p=[0.4, 0.25, 0.2, 0.1, 0.05]),
                ["White", "Black", "Hispanic", "Asian", "Other"],
            ),
            "age_group": pd.Categorical.from_codes(
                rng.integers(0, 3, rows), ["<40", "40-60", "60+"]
            ),
        }
    )
    y_true = rng.random(rows) < 0.4
    y_pred = rng.random(rows) < np.where(frame["sex"].cat.codes.to_numpy() == 0, 0.3, 0.4)
    return frame, y_true, y_pred


def ours(frame, y_true, y_pred, bootstrap: int) -> float:
    data = ProbeInput(frame=frame, protected=tuple(frame.columns), y_pred=y_pred, y_true=y_true)
    cfg = DemographicConfig(intersectional=True, bootstrap=bootstrap)
    t = time.perf_counter()
    DemographicProbe().run(data=data, model=None, config=cfg)
    return time.perf_counter() - t


FULL_SETS = [
    ["sex"],
    ["race"],
    ["age_group"],
    ["sex", "race"],
    ["sex", "age_group"],
    ["race", "age_group"],
    ["sex", "race", "age_group"],
]


def fairlearn_time(frame, y_true, y_pred, sets) -> float:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    metrics = {
        "count": count,
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "fnr": false_negative_rate,
        "precision": precision_score,
        "accuracy": accuracy_score,
    }
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in sets:
            mf = MetricFrame(
                metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=frame[s]
            )
            mf.difference()
            mf.ratio()
    return time.perf_counter() - t


def whole_audit(path: Path, bootstrap: int) -> float:
    """run_audit from the Parquet file: load, validate, probe, policy, report (no DB)."""
    from audit.engine.run import compute_results, write_outputs

    spec = {
        "name": "bench",
        "domain": "hiring",
        "dataset": {
            "path": str(path),
            "label": "y",
            "prediction": "pred",
            "protected": ["sex", "race", "age_group"],
        },
        "probes": [{"kind": "demographic", "intersectional": True, "bootstrap": bootstrap}],
    }
    t = time.perf_counter()
    results = compute_results(spec)
    write_outputs(results, path.parent / f"out-{bootstrap}")
    return time.perf_counter() - t


def peak_memory(frame, y_true, y_pred) -> int:
    gc.collect()
    tracemalloc.start()
    ours(frame, y_true, y_pred, bootstrap=1000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--fairlearn-full-max-rows",
        type=int,
        default=1_000_000,
        help="above this, MetricFrame runs on the single attribute 'sex' only (it is that slow)",
    )
    args = ap.parse_args()
    print(
        f"{'rows':>11} {'probe s':>8} {'audit s':>8} {'audit+boot s':>12} {'boot %':>7} "
        f"{'MetricFrame s':>13} {'sets':>4} {'ours same s':>11} {'speed-up':>9} "
        f"{'input MB':>8} {'peak MB':>8} {'peak/input':>10}"
    )
    for rows in args.rows:
        frame, y_true, y_pred = make_data(rows)
        input_bytes = int(
            frame.memory_usage(index=False, deep=True).sum() + y_true.nbytes + y_pred.nbytes
        )
        ours(frame.head(1000), y_true[:1000], y_pred[:1000], 0)  # warm imports
        t_probe = min(ours(frame, y_true, y_pred, 0) for _ in range(args.repeat))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "decisions.parquet"
            pd.DataFrame(
                {
                    **{c: frame[c] for c in frame},
                    "y": y_true.astype("int8"),
                    "pred": y_pred.astype("int8"),
                }
            ).to_parquet(path)
            t_audit = min(whole_audit(path, 0) for _ in range(args.repeat))
            t_boot = min(whole_audit(path, 1000) for _ in range(args.repeat))
        sets = FULL_SETS if rows <= args.fairlearn_full_max_rows else [["sex"]]
        t_fair = fairlearn_time(frame, y_true, y_pred, sets)
        if sets is FULL_SETS:
            t_same = t_probe
        else:
            sub = frame[["sex"]]
            t_same = min(ours(sub, y_true, y_pred, 0) for _ in range(args.repeat))
        peak = peak_memory(frame, y_true, y_pred)
        print(
            f"{rows:>11,} {t_probe:>8.3f} {t_audit:>8.3f} {t_boot:>12.3f} "
            f"{100 * (t_boot - t_audit) / t_boot:>6.1f}% {t_fair:>13.2f} {len(sets):>4} "
            f"{t_same:>11.3f} {t_fair / t_same:>8.0f}x {input_bytes / 1e6:>8.1f} "
            f"{peak / 1e6:>8.1f} {peak / input_bytes:>10.2f}",
            flush=True,
        )
    print(
        "probe: DemographicProbe on in-memory columns (3 attributes + 4 intersections, every\n"
        "rate, CI, p-value); audit: run_audit from Parquet incl. loading, validation, policy,\n"
        "report; boot %: share of audit+boot time spent on 1,000 bootstrap replicates;\n"
        "speed-up: MetricFrame time / our probe time on the same attribute sets; peak: \n"
        "tracemalloc peak of the probe with 1,000 bootstrap replicates vs input column bytes."
    )


if __name__ == "__main__":
    main()
