"""``dataset.weight`` in CDDPL (``dataset.strata``) and in the bootstrap.

CDDPL is recomputed by hand with pandas on the weighted rows, following smclarify's
formula (``CDD = sum_i n_i DD_i / n``, ``DD_i`` the facet's share of the rejections
minus its share of the acceptances in stratum ``i``). The weighted bootstrap is the
Poisson bootstrap of the rows drawn on the counts: the same replicates in memory,
over chunks and over shards for one seed, and a seeded simulation shows its coverage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit.engine import data as data_mod
from audit.engine import sharding
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.settings import get_settings
from audit.sources.public import load_adult
from probes.counts import count_groups
from probes.demographic import DemographicConfig, entries_from_counts


def _lending(path: Path, n: int = 3000) -> Path:
    rng = np.random.default_rng(11)
    race = rng.choice(["White", "Black", "Asian"], size=n, p=[0.6, 0.25, 0.15])
    band = rng.choice(["low", "mid", "high"], size=n)
    p = 0.3 + 0.2 * (band == "mid") + 0.4 * (band == "high") - 0.1 * (race == "Black")
    approved = (rng.random(n) < p).astype(int)
    # the weights favour approved applicants in the high band: weighted != unweighted
    w = rng.uniform(0.5, 2.0, n) * np.where((band == "high") & (approved == 1), 3.0, 1.0)
    frame = pd.DataFrame({"race": race, "band": band, "approved": approved, "w": w.round(3)})
    frame["repaid"] = (rng.random(n) < 0.8).astype(int)
    frame.to_csv(path, index=False)
    return path


def _spec(path: Path, **extra: Any) -> dict[str, Any]:
    dataset = {
        "path": str(path),
        "label": "repaid",
        "prediction": "approved",
        "protected": ["race"],
        "strata": "band",
        "weight": "w",
        **extra,
    }
    return {
        "name": "cddpl",
        "domain": "lending",
        "dataset": dataset,
        "probes": [{"kind": "demographic"}],
    }


def _cddpl_by_hand(df: pd.DataFrame, facet: str, w: str | None) -> float:
    weight = df[w] if w else pd.Series(1.0, index=df.index)
    ok = df["approved"] == 1
    total = 0.0
    for _, idx in df.groupby("band").groups.items():
        part, wt = df.loc[idx], weight.loc[idx]
        acc, rej = ok.loc[idx], ~ok.loc[idx]
        is_facet = part["race"] == facet
        acc_share = wt[acc & is_facet].sum() / wt[acc].sum() if wt[acc].sum() else 0.0
        rej_share = wt[rej & is_facet].sum() / wt[rej].sum() if wt[rej].sum() else 0.0
        total += wt.sum() * (rej_share - acc_share)
    return float(total / weight.sum())


def test_weighted_cddpl_equals_the_weighted_formula_by_hand(tmp_path: Path) -> None:
    path = _lending(tmp_path / "pool.csv")
    df = pd.read_csv(path)
    weighted = compute_results(_spec(path))
    plain = compute_results(_spec(path, weight=None))
    entry = next(p for p in weighted["probes"] if p["attribute"] == "race")
    plain_entry = next(p for p in plain["probes"] if p["attribute"] == "race")
    plain_groups = {g["group"]: g for g in plain_entry["groups"]}
    for g in entry["groups"]:
        assert g["cddpl"] == pytest.approx(_cddpl_by_hand(df, g["group"], "w"), abs=1e-12)
        unweighted = plain_groups[g["group"]]["cddpl"]
        assert unweighted == pytest.approx(_cddpl_by_hand(df, g["group"], None), abs=1e-12)
        assert g["cddpl"] != pytest.approx(unweighted, abs=1e-4)  # the weights count


def test_integer_weighted_cddpl_equals_the_repeated_rows(tmp_path: Path) -> None:
    path = _lending(tmp_path / "pool.csv", n=800)
    df = pd.read_csv(path)
    df["w"] = np.random.default_rng(2).integers(1, 5, len(df))
    df.to_csv(path, index=False)
    repeated = df.loc[df.index.repeat(df["w"])]
    rep_path = tmp_path / "repeated.csv"
    repeated.to_csv(rep_path, index=False)
    a = compute_results(_spec(path))
    b = compute_results(_spec(rep_path, weight=None))
    ga = {
        g["group"]: g["cddpl"] for p in a["probes"] if p["attribute"] == "race" for g in p["groups"]
    }
    gb = {
        g["group"]: g["cddpl"] for p in b["probes"] if p["attribute"] == "race" for g in p["groups"]
    }
    assert ga == pytest.approx(gb, abs=1e-12)


def _cddpl(doc: dict[str, Any]) -> dict[str, float | None]:
    return {
        f"{p['attribute']}/{g['group']}": g.get("cddpl") for p in doc["probes"] for g in p["groups"]
    }


def _sharded_and_chunked(
    spec: dict[str, Any],
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    shard_rows: int,
    part_rows: int,
    chunk_rows: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``spec``'s document merged from shards of ``shard_rows`` (each counted in chunks of
    ``part_rows``, the parts through JSON as a worker sends them), and computed by the
    engine reading the file in chunks of ``chunk_rows``."""
    parsed, _ = parse_spec(spec)
    assert sharding.shardable(parsed)
    shards = sharding.plan_for(parsed, path, rows=None, shard_rows=shard_rows, max_shards=64)
    assert len(shards) > 1
    parts = [
        data_mod.count_chunks(
            parsed.dataset, path, shard=s, chunk_rows=part_rows, max_levels=parsed.policy.max_levels
        )
        for s in shards
    ]
    sharded = sharding.results_from_parts(
        spec, json.loads(json.dumps(parts)), audit_id="x", path=path
    )
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1000")
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", str(chunk_rows))
    get_settings.cache_clear()
    try:
        in_chunks = compute_results(spec)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert in_chunks["dataset"]["chunked"] is True
    return sharded, in_chunks


def test_weighted_cddpl_is_the_same_in_memory_chunked_and_sharded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _lending(tmp_path / "pool.csv", n=6000)
    df = pd.read_csv(path)
    df["sex"] = np.random.default_rng(4).choice(["F", "M"], size=len(df))
    df.loc[::50, "band"] = np.nan  # missing strata: the unknown stratum, in every path
    df.to_csv(path, index=False)
    spec = _spec(path, protected=["race", "sex"])
    spec["probes"] = [{"kind": "demographic", "intersectional": True}]
    in_memory = compute_results(spec)
    expected = _cddpl(in_memory)
    assert len(expected) == 3 + 2 + 6 and all(v is not None for v in expected.values())
    by_hand = df.assign(band=df["band"].fillna("unknown"))
    for g in ("White", "Black", "Asian"):
        assert expected[f"race/{g}"] == pytest.approx(_cddpl_by_hand(by_hand, g, "w"), abs=1e-12)

    sharded, in_chunks = _sharded_and_chunked(
        spec, path, monkeypatch, shard_rows=1500, part_rows=700, chunk_rows=900
    )
    for doc in (in_chunks, sharded):
        got = _cddpl(doc)
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert got[k] == pytest.approx(v, abs=1e-12), k


def _three_ways(
    spec: dict[str, Any], path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The results in memory, over chunks and over shards."""
    in_memory = compute_results(spec)
    sharded, in_chunks = _sharded_and_chunked(
        spec, path, monkeypatch, shard_rows=1000, part_rows=400, chunk_rows=700
    )
    return [in_memory, in_chunks, sharded]


@pytest.mark.parametrize("weight", ["w", None])
def test_cddpl_needs_no_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weight: str | None
) -> None:
    """CDDPL uses predictions and strata only: without ``dataset.label`` it is computed,
    equal to smclarify's formula by hand and to the value with a label, in every path."""
    path = _lending(tmp_path / "pool.csv", n=3000)
    df = pd.read_csv(path)
    with_label = _cddpl(compute_results(_spec(path, weight=weight)))
    for doc in _three_ways(_spec(path, weight=weight, label=None), path, monkeypatch):
        got = _cddpl(doc)
        assert got.keys() == with_label.keys() == {f"race/{g}" for g in ("White", "Black", "Asian")}
        for key, value in got.items():
            assert value is not None, key
            assert value == pytest.approx(_cddpl_by_hand(df, key[5:], weight), abs=1e-12)
            assert value == pytest.approx(with_label[key], abs=1e-12)


# ---------------------------------------------------------------- weighted bootstrap


@pytest.fixture(scope="module")
def adult_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = load_adult(dropna=True)
    df["pred"] = ((df["education_num"] >= 13) | (df["hours_per_week"] >= 50)).astype(int)
    path = tmp_path_factory.mktemp("adult") / "adult.csv"
    df[["sex", "race", "income", "pred", "fnlwgt"]].to_csv(path, index=False)
    return path


def _boot_spec(path: Path) -> dict[str, Any]:
    return {
        "name": "weighted-bootstrap",
        "domain": "lending",
        "seed": 7,
        "dataset": {
            "path": str(path),
            "label": "income",
            "prediction": "pred",
            "protected": ["sex", "race"],
            "weight": "fnlwgt",
        },
        "probes": [{"kind": "demographic", "bootstrap": 200, "intersectional": True}],
    }


def _boot_fields(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in doc["probes"]:
        out[p["attribute"]] = p["summary"].get("demographic_parity_difference_ci_bootstrap")
        for g in p["groups"]:
            for k in ("selection_rate_ci_bootstrap", "impact_ratio_ci_bootstrap"):
                out[f"{p['attribute']}/{g['group']}/{k}"] = g.get(k)
    return out


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        if v is None:
            assert b[k] is None, k
        else:
            assert b[k] == pytest.approx(v, abs=1e-9), k


def test_weighted_bootstrap_is_the_same_in_memory_chunked_and_sharded(
    adult_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _boot_spec(adult_csv)
    in_memory = compute_results(spec)
    assert in_memory["dataset"].get("chunked") is not True
    female = next(
        g
        for p in in_memory["probes"]
        if p["attribute"] == "sex"
        for g in p["groups"]
        if g["group"] == "Female"
    )
    lo, hi = female["selection_rate_ci_bootstrap"]
    assert lo < female["selection_rate"] < hi
    # the bootstrap interval is close to the Kish (Wilson) interval of the same rate
    wl, wh = female["selection_rate_ci"]
    assert abs((hi - lo) - (wh - wl)) < 0.5 * (wh - wl)
    assert _boot_fields(compute_results({**spec, "seed": 8})) != _boot_fields(in_memory)

    sharded, in_chunks = _sharded_and_chunked(
        spec, adult_csv, monkeypatch, shard_rows=7000, part_rows=3000, chunk_rows=5000
    )
    expected = _boot_fields(in_memory)
    _assert_same(expected, _boot_fields(in_chunks))
    _assert_same(expected, _boot_fields(sharded))


def test_weighted_bootstrap_covers_the_population_rate_in_a_seeded_simulation() -> None:
    """Unequal-probability samples from a known population: the weighted (Hajek) rate's
    95% bootstrap interval covers the population's rate about 95% of the time, while
    ignoring the weights would be biased (the sampling favours selected rows)."""
    rng = np.random.default_rng(2026)
    pop_n = 200_000
    group = rng.choice(["a", "b"], size=pop_n, p=[0.6, 0.4])
    x = rng.random(pop_n)
    selected = rng.random(pop_n) < np.where(group == "a", 0.35, 0.25) + 0.5 * (x - 0.5)
    inclusion = 0.2 + x  # the sample favours high x, hence selected rows
    prob = inclusion / inclusion.sum()
    truth = {g: float(selected[group == g].mean()) for g in ("a", "b")}
    truth_ratio = truth["b"] / truth["a"]
    cfg = DemographicConfig(bootstrap=300)
    sims, hits, ratio_hits, naive_hits = 200, {"a": 0, "b": 0}, 0, 0
    for s in range(sims):
        rows = rng.choice(pop_n, size=600, p=prob)  # with replacement, probability ~ inclusion
        frame = pd.DataFrame({"g": pd.Categorical(group[rows], categories=["a", "b"])})
        w = 1.0 / inclusion[rows]
        counts = count_groups(frame, ["g"], y_pred=selected[rows], weight=w)
        (entry,) = entries_from_counts(counts, config=cfg, min_group_size=1, seed=s)
        groups = {g["group"]: g for g in entry.groups}
        for g in ("a", "b"):
            lo, hi = groups[g]["selection_rate_ci_bootstrap"]
            hits[g] += lo <= truth[g] <= hi
        ci = (
            groups["b"]["impact_ratio_ci_bootstrap"]
            if (entry.model_extra or {})["reference_group"] == "a"
            else None
        )
        if ci is not None:
            ratio_hits += ci[0] <= truth_ratio <= ci[1]
        plain = count_groups(frame, ["g"], y_pred=selected[rows])
        (unweighted,) = entries_from_counts(plain, config=cfg, min_group_size=1, seed=s)
        lo, hi = next(g for g in unweighted.groups if g["group"] == "a")[
            "selection_rate_ci_bootstrap"
        ]
        naive_hits += lo <= truth["a"] <= hi
    for g in ("a", "b"):
        assert 0.9 <= hits[g] / sims <= 0.98, (g, hits[g] / sims)  # 0.94, 0.945
    assert ratio_hits / sims >= 0.9, ratio_hits / sims  # 0.935
    assert naive_hits / sims < 0.6  # 0.35: unweighted, the interval misses
