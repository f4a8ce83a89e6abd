"""Synthetic hiring example: a resume-screening model with a planted disparity.

A seeded generator draws an applicant pool (sex, race/ethnicity in the NYC
Local Law 144 categories, age group, years of experience, a skills test score)
and a ground-truth ``qualified`` label that depends only on experience and
skills, so every group has the same qualification rate by construction. A
hypothetical screening model then scores the applicants. It sees the same
merit signal plus noise, but also a proxy feature (e.g. an "employment gap"
flag or a zip-code based "commute" score) that, in this fictional pool, is
more common among Black or African American applicants; the model's weight on
that proxy is the planted disparity. With the defaults, Black or African
American applicants are advanced at about 0.6 times the rate of White
applicants, while sex carries no disparity (impact ratio about 1). Age is a
subtler case: older applicants have more experience, and the model puts a
small negative weight on being 40+, so selection rates stay close (ratio about
0.94) while qualified 40+ applicants are advanced less often than qualified
under-40s (a true-positive-rate gap). An audit of ``applicants.csv`` should
therefore fail on race/ethnicity and pass on sex.

Run ``python -m audit.examples.hiring --out my-hiring`` to write
``applicants.csv`` (and ``spec.yaml`` if absent), then
``biasaudit run my-hiring/spec.yaml --out out/hiring``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from audit.examples._common import write_spec

__all__ = ["PLANTED", "RACE_SHARES", "generate", "make_applicants"]

#: LL144 race/ethnicity categories (EEO-1) and their share of the synthetic pool
RACE_SHARES: dict[str, float] = {
    "White": 0.40,
    "Hispanic or Latino": 0.22,
    "Black or African American": 0.18,
    "Asian": 0.12,
    "Two or More Races": 0.04,
    "Native Hawaiian or Pacific Islander": 0.02,
    "American Indian or Alaska Native": 0.02,
}
SEX_SHARES: dict[str, float] = {"Female": 0.5, "Male": 0.5}
AGE_SHARES: dict[str, float] = {"<40": 0.65, "40+": 0.35}

#: What the generator plants: (attribute, disadvantaged group, reference group)
PLANTED = ("race_ethnicity", "Black or African American", "White")
NEUTRAL = "sex"

# Screening model: score = sigmoid(SLOPE * (merit + noise) - PROXY_WEIGHT * proxy - OFFSET)
_SLOPE = 2.2
_OFFSET = 1.1
_PROXY_WEIGHT = 1.8
# small weight against 40+: offset by their longer experience, their selection rate stays
# close to the under-40s, but qualified 40+ applicants are advanced less often (a TPR gap)
_AGE_PENALTY = 0.3
_PROXY_RATE = {"Black or African American": 0.60}  # share with the proxy flag; others 0.10
_PROXY_RATE_DEFAULT = 0.10
_THRESHOLD = 0.5


def _draw(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    names = np.array(list(shares), dtype=object)
    p = np.array(list(shares.values()), dtype=float)
    return rng.choice(names, size=n, p=p / p.sum())


def make_applicants(*, n: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Return the synthetic applicant pool, one row per applicant.

    Columns: ``applicant_id``, ``sex``, ``race_ethnicity``, ``age_group``,
    ``years_experience``, ``skills_score`` (0-100), ``employment_gap`` (the proxy,
    0/1), ``qualified`` (ground truth, 0/1), ``score`` (the model's probability)
    and ``advanced`` (the model's decision, 1 = advanced to interview).
    Deterministic for a given ``n`` and ``seed``.
    """
    if n < 1:
        raise ValueError(f"n: must be a positive number of applicants, got {n}")
    rng = np.random.default_rng(seed)
    sex = _draw(rng, SEX_SHARES, n)
    race = _draw(rng, RACE_SHARES, n)
    age_group = _draw(rng, AGE_SHARES, n)
    older = age_group == "40+"
    # experience depends on age only; skills on nobody's demographics
    years = np.clip(rng.gamma(2.0, 2.5, n) + np.where(older, 2.0, 0.0), 0, 40).round(1)
    skills = np.clip(rng.normal(65, 12, n), 0, 100).round(1)
    z_years = (np.log1p(years) - np.log1p(years).mean()) / np.log1p(years).std()
    z_skills = (skills - skills.mean()) / skills.std()
    merit = 0.3 * z_years + 0.7 * z_skills + rng.normal(0, 0.5, n)
    qualified = (merit > np.quantile(merit, 0.6)).astype("int64")
    proxy_p = np.full(n, _PROXY_RATE_DEFAULT)
    for group, rate in _PROXY_RATE.items():
        proxy_p[race == group] = rate
    gap = (rng.random(n) < proxy_p).astype("int64")
    logit = (
        _SLOPE * (merit + rng.normal(0, 0.4, n))
        - _PROXY_WEIGHT * gap
        - _AGE_PENALTY * older
        - _OFFSET
    )
    score = 1.0 / (1.0 + np.exp(-logit))
    return pd.DataFrame(
        {
            "applicant_id": [f"A{i:05d}" for i in range(1, n + 1)],
            "sex": sex.astype(str),
            "race_ethnicity": race.astype(str),
            "age_group": age_group.astype(str),
            "years_experience": years,
            "skills_score": skills,
            "employment_gap": gap,
            "qualified": qualified,
            "score": score.round(6),
            "advanced": (score >= _THRESHOLD).astype("int64"),
        }
    )


def generate(*, out_dir: Path, n: int = 5000, seed: int = 0) -> Path:
    """Write ``applicants.csv`` and (if absent) ``spec.yaml`` into ``out_dir``.

    Returns the path of the spec.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    make_applicants(n=n, seed=seed).to_csv(out_dir / "applicants.csv", index=False)
    return write_spec("hiring", out_dir=out_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("my-hiring"), help="output folder")
    parser.add_argument("--n", type=int, default=5000, help="number of applicants")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    spec = generate(out_dir=args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.out / 'applicants.csv'}; audit it with: biasaudit run {spec}")


if __name__ == "__main__":
    main()
