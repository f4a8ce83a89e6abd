"""The counterfactual-text probe on small deterministic scorers (no weights needed).

The scorers are plain functions of the text, so every expected number can be
computed independently; scipy's paired t-test is the oracle for the statistics.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from probes.base import ProbeError, ProbeInput, get_probe
from probes.counterfactual_text import CounterfactualTextConfig, NameSwapProbe
from probes.swap import NameLexicon, builtin_lexicon

LEX = NameLexicon.from_json(builtin_lexicon("names"))
FEMALE = {n for n in LEX.levels if LEX.level(n, "gender") == "female"}


class Scorer:
    """A text scorer with the adapter interface; records its calls."""

    kind = "test"
    sha256 = "0" * 64

    def __init__(self, fn, threshold: float | None = 0.5) -> None:
        self.fn = fn
        if threshold is not None:
            self.threshold = threshold
        self.calls: list[list[str]] = []
        self.predict_calls = 0

    def score(self, texts):
        self.calls.append(list(texts))
        return np.array([self.fn(t) for t in texts], dtype=float)

    def predict(self, texts):
        self.predict_calls += 1
        return np.array([self.fn(t) >= 0.5 for t in texts])


def penalise_female(text: str) -> float:
    words = {w.strip(".,:;'s") for w in text.split()}
    return 0.4 if words & FEMALE else 0.6


def hashed(text: str) -> float:
    return (zlib.crc32(text.encode()) % 1000) / 1000


def run(model, frame=None, **cfg):
    config = CounterfactualTextConfig.model_validate({"kind": "counterfactual-text", **cfg})
    data = ProbeInput(frame=frame if frame is not None else pd.DataFrame(), protected=())
    return NameSwapProbe().run(data=data, model=model, config=config)


def by_group(entry):
    return {g["group"]: g for g in entry.groups}


def test_registered_with_kind_and_needs() -> None:
    cls = get_probe("counterfactual-text")
    assert cls is NameSwapProbe and cls.kind == "counterfactual" and cls.needs == ("model",)


def test_planted_gap_is_measured_exactly_on_templates() -> None:
    model = Scorer(penalise_female)
    (entry,) = run(model).entries
    g = by_group(entry)
    assert entry.kind == "counterfactual-text" and entry.attribute == "gender"
    assert entry.model_extra["reference_group"] == "male"
    assert g["female"]["score_gap"] == pytest.approx(-0.2)
    assert g["female"]["flip_rate"] == 1.0 and g["female"]["p_value"] < 1e-10
    assert g["male"]["score_gap"] == 0.0 and g["male"]["p_value"] is None
    assert g["female"]["n"] == g["male"]["n"] == entry.summary["base_texts"] > 100
    assert entry.summary["max_abs_score_gap"] == pytest.approx(0.2)
    assert entry.summary["source"] == "templates:hiring"
    ex = entry.model_extra["examples"]
    assert len(ex) == 10 and all(e["delta"] == pytest.approx(-0.2) for e in ex)
    assert all(e["score"] == 0.6 and e["counterfactual_score"] == 0.4 for e in ex)
    assert len(model.calls) == 1 and model.predict_calls == 0  # one pass, labels from scores


def test_name_blind_model_passes() -> None:
    model = Scorer(lambda t: 0.7 if "years" in t else 0.3)
    (entry,) = run(model, attributes=["gender"], templates="lending").entries
    g = by_group(entry)["female"]
    assert g["score_gap"] == 0.0 and g["flip_rate"] == 0.0 and g["p_value"] == 1.0
    assert entry.summary["source"] == "templates:lending"


def test_statistics_match_scipy_paired_t_test() -> None:
    texts = [f"Ada applied in round {i} with {i % 7} years of experience." for i in range(40)]
    lexicon = {
        "mode": "replace",
        "names": [{"name": "Ada", "gender": "female"}, {"name": "Bob", "gender": "male"}],
    }
    (entry,) = run(
        Scorer(hashed), pd.DataFrame({"t": texts}), text_column="t", lexicon=lexicon
    ).entries
    f = np.array([hashed(t) for t in texts])
    m = np.array([hashed(t.replace("Ada", "Bob")) for t in texts])
    g = by_group(entry)["female"]
    d = f - m
    assert g["score_gap"] == pytest.approx(d.mean())
    assert g["p_value"] == pytest.approx(stats.ttest_rel(f, m).pvalue)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert g["score_gap_ci"] == pytest.approx([lo, hi])
    assert g["flip_rate"] == pytest.approx(np.mean((f >= 0.5) != (m >= 0.5)))
    assert g["mean_score"] == pytest.approx(f.mean())


def test_dataset_texts_swap_names_keep_case_and_skip_unnamed() -> None:
    frame = pd.DataFrame(
        {
            "resume": [
                "EMILY WALSH, nurse, 5 years.",
                "No name here.",
                None,
                "Reference: Jamal, then Jamal again.",
            ]
        }
    )
    model = Scorer(penalise_female)
    (entry,) = run(model, frame, text_column="resume", examples=5).entries
    assert entry.summary["base_texts"] == 2 and entry.summary["skipped_texts"] == 1
    variants = set(model.calls[0])
    assert "EMILY WALSH, nurse, 5 years." in variants
    males = [t for t in variants if t.endswith("WALSH, nurse, 5 years.") and "EMILY" not in t]
    assert len(males) == 1 and males[0].split()[0].isupper()
    jamal = [t for t in variants if t.startswith("Reference:") and "Jamal" not in t]
    name = jamal[0].split()[1].rstrip(",")
    assert jamal[0] == f"Reference: {name}, then {name} again."
    assert LEX.level(name, "gender") == "female" and LEX.level(name, "race") == "black"


def test_race_swap_keeps_gender_and_uses_white_reference() -> None:
    (entry,) = run(Scorer(hashed), attributes=["race"], examples=50).entries
    assert entry.model_extra["reference_group"] == "white"
    assert [g["group"] for g in entry.groups] == ["black", "white", "hispanic", "asian"]
    for ex in entry.model_extra["examples"]:
        a, b = ex["text"].split()[0], ex["counterfactual"].split()[0]
        a, b = a.strip(".:,"), b.strip(".:,")
        names = [w.strip(".:,") for w in (ex["text"] + " " + ex["counterfactual"]).split()]
        found = [n for n in names if n in LEX.levels]
        assert len(found) == 2
        assert LEX.level(found[0], "gender") == LEX.level(found[1], "gender")
        assert LEX.level(found[1], "race") == ex["group"]


def test_pronoun_and_term_swaps_on_a_column() -> None:
    frame = pd.DataFrame(
        {"t": ["He is a strong candidate; hire him.", "A man who ran a shop.", "Nothing gendered."]}
    )
    model = Scorer(lambda t: 0.9 if " he " in f" {t.lower()} " else 0.5)
    (entry,) = run(model, frame, text_column="t", swap="pronouns").entries
    assert entry.summary["base_texts"] == 1
    assert "She is a strong candidate; hire her." in model.calls[0]
    assert by_group(entry)["female"]["score_gap"] == pytest.approx(-0.4)
    model = Scorer(hashed)
    (entry,) = run(model, frame, text_column="t", swap="terms").entries
    assert entry.summary["base_texts"] == 1 and "A woman who ran a shop." in model.calls[0]


def test_predict_is_used_without_a_threshold() -> None:
    model = Scorer(penalise_female, threshold=None)
    (entry,) = run(model, names_per_group=3).entries
    assert model.predict_calls == 1 and by_group(entry)["female"]["flip_rate"] == 1.0
    assert entry.summary["base_texts"] == 3 * 12  # 3 name pairs x 12 hiring templates


def test_max_texts_reference_and_groups() -> None:
    (entry,) = run(
        Scorer(hashed),
        attributes=["race"],
        max_texts=25,
        reference={"race": "black"},
        groups={"race": ["black", "asian"]},
    ).entries
    assert entry.summary["base_texts"] == 25 and entry.model_extra["reference_group"] == "black"
    assert [g["group"] for g in entry.groups] == ["black", "asian"]


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"text_column": "nope"}, "probes\\[\\].text_column: column 'nope'"),
        ({"attributes": ["religion"]}, "probes\\[\\].attributes: 'religion'"),
        ({"reference": {"gender": "other"}}, "probes\\[\\].reference.gender"),
        ({"groups": {"gender": ["female", "x"]}}, "probes\\[\\].groups.gender"),
        ({"swap": "pronouns", "attributes": ["race"]}, "valid: gender"),
    ],
)
def test_errors_name_the_field(cfg, match) -> None:
    with pytest.raises(ProbeError, match=match):
        run(Scorer(hashed), pd.DataFrame({"t": ["x"]}), **cfg)


def test_empty_dataset_serialises_and_is_deterministic() -> None:
    (entry,) = run(
        Scorer(hashed), pd.DataFrame({"t": pd.Series([], dtype=str)}), text_column="t"
    ).entries
    assert all(g["n"] == 0 and g["score_gap"] is None for g in entry.groups)
    assert entry.summary["max_abs_score_gap"] is None
    json.dumps(entry.model_dump(mode="json"), allow_nan=False)
    a = run(Scorer(hashed), attributes=["gender", "race"], names_per_group=5, seed=3)
    b = run(Scorer(hashed), attributes=["gender", "race"], names_per_group=5, seed=3)
    assert a.model_dump() == b.model_dump()
    text = json.dumps(a.model_dump(mode="json"), allow_nan=False)
    assert not math.isnan(json.loads(text)["entries"][0]["groups"][0]["mean_score"])


def test_progress_is_reported() -> None:
    seen: list[float] = []
    config = CounterfactualTextConfig(kind="counterfactual-text", names_per_group=2)
    data = ProbeInput(frame=pd.DataFrame(), protected=(), progress=seen.append)
    NameSwapProbe().run(data=data, model=Scorer(hashed), config=config)
    assert seen[0] == 0.05 and seen[-1] == 1.0 and seen == sorted(seen)


def test_through_the_huggingface_adapter(tiny_models: dict[str, Path]) -> None:
    from probes.models.huggingface import TextClassificationAdapter, load_huggingface

    model = load_huggingface(
        path=tiny_models["text-classification"], task="text-classification", device="cpu"
    )
    assert isinstance(model, TextClassificationAdapter)
    seen: list[float] = []
    config = CounterfactualTextConfig(
        kind="counterfactual-text", attributes=["gender", "race"], names_per_group=4
    )
    data = ProbeInput(frame=pd.DataFrame(), protected=(), progress=seen.append)
    result = NameSwapProbe().run(data=data, model=model, config=config)
    assert len(seen) > 3 and seen == sorted(seen) and seen[-1] == 1.0
    for entry in result.entries:
        assert entry.model_extra is not None
        ex = entry.model_extra["examples"][0]
        again = model.score([ex["text"], ex["counterfactual"]])
        assert again == pytest.approx([ex["score"], ex["counterfactual_score"]])
        g = by_group(entry)
        assert g[entry.model_extra["reference_group"]]["score_gap"] == 0.0
        assert all(0.0 <= x["mean_score"] <= 1.0 for x in entry.groups)


# ----------------------------------------------------------- template mode: clustered units


def test_cluster_robust_se_reduces_to_the_usual_one_without_shared_clusters() -> None:
    from probes.counterfactual_text import cluster_robust_se

    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    own = np.arange(40)
    usual = float(x.std(ddof=1)) / math.sqrt(40)
    se, df = cluster_robust_se(x, own[:, None])  # type: ignore[misc]
    assert se == pytest.approx(usual, rel=1e-12) and df == 39
    # two-way where one clustering is every unit on its own: the other one-way variance
    groups = own % 8
    two, _ = cluster_robust_se(x, np.column_stack([groups, own]))  # type: ignore[misc]
    one, df_one = cluster_robust_se(x, groups[:, None])  # type: ignore[misc]
    assert two == pytest.approx(one, rel=1e-12) and df_one == 7


def test_clustered_intervals_hold_their_level_when_templates_and_names_matter() -> None:
    """Simulated gaps with template and name effects: the naive t interval undercovers."""
    from probes.counterfactual_text import _group_stats

    rng = np.random.default_rng(7)
    t_count, p_count, true_gap = 12, 25, 0.05
    clusters = np.array([(t, q) for t in range(t_count) for q in range(p_count)])
    covered = {"naive": 0, "clustered": 0}
    sims = 300
    for _ in range(sims):
        a = rng.normal(0, 0.04, t_count)[clusters[:, 0]]  # some templates move names more
        b = rng.normal(0, 0.04, p_count)[clusters[:, 1]]  # some name pairs differ more
        gap = true_gap + a + b + rng.normal(0, 0.01, len(clusters))
        ref = rng.uniform(0.3, 0.7, len(clusters))
        s = np.column_stack([ref, ref + gap])
        p = s >= 0.5
        for kind, cl in (("naive", None), ("clustered", clusters)):
            lo, hi = _group_stats(s, p, ["m", "f"], 0, 0.95, cl)[1]["score_gap_ci"]
            covered[kind] += lo <= true_gap <= hi
    assert covered["naive"] / sims < 0.6  # far too narrow: units are not independent
    assert covered["clustered"] / sims > 0.88  # near the nominal 95 % (12 clusters, df 11)


def test_template_name_swaps_report_clustered_statistics() -> None:
    from probes.counterfactual_text import CLUSTERED_TEST, PAIRED_TEST

    clustered = run(Scorer(hashed), swap="names", attributes=["gender"], names_per_group=6)
    [entry] = clustered.entries
    assert entry.summary["test"] == CLUSTERED_TEST
    frame = pd.DataFrame({"cv": [f"Emily wrote report {i}." for i in range(30)]})
    plain = run(Scorer(hashed), frame=frame, text_column="cv", swap="names")
    assert plain.entries[0].summary["test"] == PAIRED_TEST
    female = next(g for g in entry.groups if g["group"] == "female")
    lo, hi = female["score_gap_ci"]
    assert lo <= female["score_gap"] <= hi
    assert 0.0 <= female["p_value"] <= 1.0
