"""mlm-stereotype: pair loading, CrowS-Pairs scoring, statistics, result shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from probes import ProbeError, ProbeInput, ProbeResult, get_probe
from probes.mlm_stereotype import (
    MLMStereotypeConfig,
    _group_stats,
    load_pairs,
    shared_positions,
)
from probes.models.huggingface import FillMaskAdapter, load_huggingface

DATA = ProbeInput(frame=pd.DataFrame({"g": ["a"]}), protected=("g",))


def _run(model, **config):  # noqa: ANN001, ANN202
    probe = get_probe("mlm-stereotype")()
    cfg = MLMStereotypeConfig.model_validate({"kind": "mlm-stereotype", **config})
    return probe.run(data=DATA, model=model, config=cfg)


def test_builtin_pairs() -> None:
    pairs = load_pairs()
    assert 40 <= len(pairs) <= 60
    assert {p.bias_type for p in pairs} == {"gender", "race", "age", "religion"}
    assert all(p.stereotype != p.anti_stereotype for p in pairs)
    assert len({p.stereotype for p in pairs}) == len(pairs)


def test_user_pairs_csv_jsonl_and_errors(tmp_path: Path) -> None:
    csv = tmp_path / "crows.csv"
    csv.write_text("sent_more,sent_less,bias_type\nA b.,C b.,age\nD e.,F e.,\n")
    pairs = load_pairs(csv)
    assert [(p.stereotype, p.anti_stereotype, p.bias_type) for p in pairs] == [
        ("A b.", "C b.", "age"),
        ("D e.", "F e.", "unspecified"),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"stereotype": "x", "anti_stereotype": "y"}\nnot json\n')
    with pytest.raises(ProbeError, match=r"pairs_path: .*bad.jsonl line 2 is not JSON"):
        load_pairs(bad)
    bad.write_text('{"stereotype": "x"}\n')
    with pytest.raises(ProbeError, match="line 1 needs non-empty text fields 'stereotype'"):
        load_pairs(bad)
    with pytest.raises(ProbeError, match="pairs_path: file not found"):
        load_pairs(tmp_path / "missing.jsonl")
    other = tmp_path / "pairs.txt"
    other.write_text("x")
    with pytest.raises(ProbeError, match=r"must be a \.jsonl or \.csv"):
        load_pairs(other)


def test_shared_positions_skip_the_swapped_token() -> None:
    a = [2, 10, 11, 12, 13, 3]  # [CLS] the man is good [SEP]
    b = [2, 10, 14, 15, 12, 13, 3]  # [CLS] the wo ##man is good [SEP]
    pa, pb = shared_positions(a, b, range(1, 5), range(1, 6))
    assert pa == [1, 3, 4] and pb == [1, 4, 5]
    assert [a[i] for i in pa] == [b[j] for j in pb]


def test_group_stats_binomial_and_ties() -> None:
    delta = np.array([1.0] * 8 + [-1.0] * 2)
    g = _group_stats("x", delta, 0.95)
    assert g["stereotype_score"] == 0.8
    assert g["p_value"] == pytest.approx(0.109375)  # 2 * (45 + 10 + 1) / 1024
    lo, hi = g["stereotype_score_ci"]
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)  # Wilson
    tied = _group_stats("x", np.array([1.0, 1.0, 0.0, 0.0]), 0.95)
    assert tied["stereotype_score"] == 0.5 and tied["ties"] == 2
    assert tied["p_value"] == pytest.approx(0.5)  # sign test on the 2 untied pairs


def _hand_masked_sum(model, sentence: str, positions: list[int]) -> float:  # noqa: ANN001
    ids = torch.tensor([model.encode([sentence])[0]])
    total = 0.0
    with torch.no_grad():
        for i in positions:
            masked = ids.clone()
            masked[0, i] = model.tokenizer.mask_token_id
            logits = model.model(input_ids=masked).logits[0, i]
            total += float(torch.log_softmax(logits, -1)[ids[0, i]])
    return total


def test_crows_pairs_scoring_masks_only_shared_tokens(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = load_huggingface(path=tiny_models["fill-mask"], task="fill-mask")
    assert isinstance(model, FillMaskAdapter)
    f = tmp_path / "one.jsonl"
    stereo, anti = "the woman is a nurse.", "the man is a nurse."
    f.write_text(json.dumps({"bias_type": "gender", "stereotype": stereo, "anti_stereotype": anti}))
    result = _run(model, pairs_path=str(f), examples=1)
    assert _run(model, pairs_path=str(f), examples=1) == result  # deterministic
    # tokens: [CLS] the woman|man is a nurse . [SEP] -> shared real tokens at 1, 3, 4, 5, 6
    shared = [1, 3, 4, 5, 6]
    want = _hand_masked_sum(model, stereo, shared) - _hand_masked_sum(model, anti, shared)
    ex = result.entries[0].model_extra["examples"][0]
    assert ex["delta"] == pytest.approx(want, abs=1e-4)
    pll = _run(model, pairs_path=str(f), scoring="pll").entries[0].model_extra["examples"][0]
    full = model.pseudo_log_likelihood([stereo, anti])
    assert pll["delta"] == pytest.approx(full[0] - full[1], abs=1e-4)
    assert pll["delta"] != pytest.approx(ex["delta"], abs=1e-6)


@pytest.mark.slow
def test_builtin_run_shape_and_counts(tiny_models: dict[str, Path]) -> None:
    model = load_huggingface(path=tiny_models["fill-mask"], task="fill-mask", batch_size=64)
    seen: list[float] = []
    data = ProbeInput(frame=DATA.frame, protected=("g",), progress=seen.append)
    probe = get_probe("mlm-stereotype")()
    cfg = MLMStereotypeConfig(kind="mlm-stereotype", bias_types=["age", "gender"])
    result = probe.run(data=data, model=model, config=cfg)
    (entry,) = result.entries
    assert (entry.kind, entry.attribute) == ("mlm-stereotype", "bias_type")
    assert [g["group"] for g in entry.groups] == ["age", "gender"]
    assert sum(g["n"] for g in entry.groups) == entry.summary["n"] == 25
    for g in entry.groups:
        lo, hi = g["stereotype_score_ci"]
        assert 0 <= lo <= g["stereotype_score"] <= hi <= 1
        assert 0 <= g["p_value"] <= 1
        assert g["stereotype_more_likely"] == round(g["stereotype_score"] * g["n"])
    more = sum(g["stereotype_more_likely"] for g in entry.groups)
    assert entry.summary["stereotype_score"] == pytest.approx(more / 25)
    assert seen and seen[-1] == 1.0
    assert ProbeResult.model_validate_json(result.model_dump_json()) == result


def test_config_and_model_errors(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ValidationError):
        MLMStereotypeConfig.model_validate({"kind": "mlm-stereotype", "pairs": "x"})
    emb = load_huggingface(path=tiny_models["embedding"], task="embedding")
    with pytest.raises(ProbeError, match="needs model.kind huggingface with model.task fill-mask"):
        _run(emb)
    with pytest.raises(ProbeError, match="needs model.kind huggingface"):
        _run(None)
    mlm = load_huggingface(path=tiny_models["fill-mask"], task="fill-mask")
    with pytest.raises(ProbeError, match=r"bias_types: none of \['nationality'\]"):
        _run(mlm, bias_types=["nationality"])
