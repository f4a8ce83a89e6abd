"""Simulation study: four ways of using a race proxy for an impact ratio.

Seeded pools are drawn from the census tables with known race
(``audit.examples.lending_proxy.generate_pool``: the world BISG assumes, with a
planted black/white approval ratio). On each pool the black/white impact ratio is
estimated from the BISG posteriors by

(a) multiple imputation from the proxy's posteriors alone ("plain MI"),
(b) multiple imputation from the posteriors updated by the decision, the groups'
    approval rates fitted by EM ("EM MI", what the demographic probe reports),
(c) probability weighting (each applicant in every group with its posterior;
    Katz interval on the Kish effective sizes),
(d) threshold assignment (a race where the posterior is >= 0.8, others dropped;
    Katz interval on the counts),

and compared with the pool's true ratio (from the recorded race): mean bias, RMSE
and the share of 95% intervals that contain the true ratio.

    python benchmarks/sim_proxy_methods.py [--pools 20] [--rows 3000]
"""

from __future__ import annotations

import argparse

import numpy as np

from audit.examples.lending_proxy import generate_pool
from audit.sources.census import load_tables
from probes.proxy import RACES, assign_by_threshold, bisg
from probes.proxy_groups import _log_ratio, _rates_by, imputed_impact

BLACK, WHITE = RACES.index("black"), RACES.index("white")
METHODS = ("plain MI", "EM MI", "probability-weighted", "threshold 0.8")
Z = 1.959963984540054


def _katz(rate: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    est, var = _log_ratio(rate, n, WHITE)
    half = Z * np.sqrt(var[BLACK])
    return (
        float(np.exp(est[BLACK])),
        float(np.exp(est[BLACK] - half)),
        float(np.exp(est[BLACK] + half)),
    )


def estimates(post, y: np.ndarray, seed: int) -> dict[str, tuple[float, float, float]]:
    p = post[list(RACES)].to_numpy(dtype=float)
    w = np.ones(len(y))
    out = {}
    for name, aware in (("plain MI", False), ("EM MI", True)):
        r, lo, hi, _ = imputed_impact(
            p, y, w, ref=WHITE, seed=seed, confidence=0.95, outcome_aware=aware
        )
        out[name] = (float(r[BLACK]), float(lo[BLACK]), float(hi[BLACK]))
    n = p.sum(axis=0)
    rate = (p * y[:, None]).sum(axis=0) / n
    kish = n**2 / (p**2).sum(axis=0)
    out["probability-weighted"] = _katz(rate, kish)
    codes = np.asarray(assign_by_threshold(post[list(RACES)]).codes, dtype=np.int64)
    rate_t, n_t, _ = _rates_by(codes, len(RACES) + 1, y.astype(float), w)
    out["threshold 0.8"] = _katz(rate_t[: len(RACES)], n_t[: len(RACES)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    args = parser.parse_args()
    tables = load_tables(levels=("zcta",))
    print(f"{args.pools} pools of {args.rows:,} applicants per planted ratio (BISG, ZCTA)\n")
    print("| planted ratio | method | mean estimate | mean true | bias | RMSE | 95% coverage |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for ratio in args.ratios:
        rows: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in METHODS}
        for seed in range(args.pools):
            pool = generate_pool(tables, n=args.rows, seed=1000 + seed, approval_ratio=ratio)
            truth = pool.groupby("true_race", observed=True)["approved"].mean()
            true_ratio = float(truth["black"] / truth["white"])
            post = bisg(tables, surname=pool.last_name, geography=pool.zip).posteriors
            y = pool["approved"].to_numpy(dtype=bool)
            for name, (est, lo, hi) in estimates(post, y, seed).items():
                rows[name].append((est, lo, hi, true_ratio))
        for name in METHODS:
            a = np.array(rows[name])
            bias = a[:, 0] - a[:, 3]
            cover = np.mean((a[:, 1] <= a[:, 3]) & (a[:, 3] <= a[:, 2]))
            print(
                f"| {ratio:.1f} | {name} | {a[:, 0].mean():.3f} | {a[:, 3].mean():.3f} | "
                f"{bias.mean():+.3f} | {np.sqrt((bias**2).mean()):.3f} | {cover:.2f} |"
            )


if __name__ == "__main__":
    main()
