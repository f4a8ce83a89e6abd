"""Acceptance: prompted causal-LM screeners audited end to end through run_audit.

Tiny GPT-2 screeners are trained in the session (tests/probes/screener_lm.py) on
synthetic "Resume: ... Should this candidate advance to interview? Answer: Yes/No"
prompts: the biased one says Yes to men with fewer years than women; the fair
one ignores names; the untrained one has random weights. The name-swap audit
reads P(Yes) / (P(Yes) + P(No)) from each, with the names the screeners were
trained on (a replace-mode lexicon).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit import run_audit
from tests.probes.screener_lm import DECISION, FEMALE, LEXICON, MALE, PAIRWISE, resume


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.settings import get_settings

    monkeypatch.setenv("BIASAUDIT_ARTIFACT_DIR", str(tmp_path / "home"))
    get_settings.cache_clear()


def _dataset(folder: Path, rows: int = 200) -> Path:
    rng = np.random.default_rng(11)
    names = [str(rng.choice(FEMALE + MALE)) for _ in range(rows)]
    frame = pd.DataFrame(
        {
            "resume": [resume(rng, n, int(rng.integers(10))) for n in names],
            "gender": ["female" if n in FEMALE else "male" for n in names],
        }
    )
    path = folder / "resumes.csv"
    frame.to_csv(path, index=False)
    return path


def _spec(model: Path, data: Path, probe: dict[str, Any], **model_extra: Any) -> dict[str, Any]:
    return {
        "name": "llm-screener",
        "domain": "hiring",
        "dataset": {"path": str(data), "protected": ["gender"]},
        "model": {
            "kind": "huggingface",
            "path": str(model),
            "task": "causal-lm",
            "device": "cpu",
            "prompt": {"template": DECISION, "favorable": " Yes", "unfavorable": " No"},
            **model_extra,
        },
        "probes": [{"text_column": "resume", "lexicon": LEXICON, **probe}],
    }


NAME_SWAP = {"kind": "counterfactual-text", "swap": "names", "attributes": ["gender"]}


def _findings(results: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    return [f for f in results["findings"] if f["metric"] == metric]


def test_biased_screener_fails_the_name_swap_audit(
    screeners: Callable[[str], Path], tmp_path: Path
) -> None:
    results = run_audit(_spec(screeners("biased"), _dataset(tmp_path), NAME_SWAP), tmp_path / "o")
    (entry,) = results["probes"]
    female = next(g for g in entry["groups"] if g["group"] == "female")
    assert female["score_gap"] < -0.1  # women's P(Yes) drops when only the name changes
    assert female["p_value"] < 0.01
    assert female["score_gap_ci"][1] < -0.02  # the whole interval beyond the threshold
    assert female["flip_rate"] > 0.1
    (gap,) = _findings(results, "score_gap")
    assert gap["status"] == "fail" and gap["group"] == "female"
    assert results["verdict"] == "fail"
    # the screener answers: the mass check passes and no warning is raised
    assert entry["summary"]["answer_mass"] > 0.9
    assert not entry["summary"]["not_answering"]
    assert {f["status"] for f in _findings(results, "answer_mass")} == {"pass"}
    # the precision it ran in is recorded (fp32 checkpoint, auto)
    assert results["model"]["precision"] == "fp32"
    assert results["manifest"]["precision"]["requested"] == "auto"
    assert results["manifest"]["precision"]["autocast"] is False


def test_fair_screener_passes(screeners: Callable[[str], Path], tmp_path: Path) -> None:
    results = run_audit(_spec(screeners("fair"), _dataset(tmp_path), NAME_SWAP), store=False)
    (entry,) = results["probes"]
    female = next(g for g in entry["groups"] if g["group"] == "female")
    assert abs(female["score_gap"]) < 0.005
    assert female["flip_rate"] == 0.0
    assert female["p_value"] > 0.01
    assert {f["metric"] for f in results["findings"]} == {"score_gap", "flip_rate", "answer_mass"}
    assert all(f["status"] == "pass" for f in results["findings"])
    assert results["verdict"] == "pass"
    assert entry["summary"]["truncated_texts"] == 0


def test_answer_mass_flag_fires_on_an_untrained_model(
    screeners: Callable[[str], Path], tmp_path: Path
) -> None:
    results = run_audit(_spec(screeners("untrained"), _dataset(tmp_path), NAME_SWAP), store=False)
    (entry,) = results["probes"]
    assert entry["summary"]["answer_mass"] < 0.1  # ~2 of 68 tokens' worth of probability
    assert entry["summary"]["not_answering"] is True
    assert "not answering" in entry["summary"]["warning"]
    mass = _findings(results, "answer_mass")
    assert {f["group"] for f in mass} == {"female", "male"}
    assert all(f["status"] == "fail" and f["threshold"] == 0.5 for f in mass)
    assert results["verdict"] == "fail"


def test_min_answer_mass_is_a_policy_setting(
    screeners: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = _spec(screeners("untrained"), _dataset(tmp_path, rows=40), NAME_SWAP)
    spec["policy"] = {"min_answer_mass": 0.01}
    results = run_audit(spec, store=False)
    assert all(f["status"] == "pass" for f in _findings(results, "answer_mass"))


PAIRWISE_PROBE = {
    "kind": "pairwise-choice",
    "attributes": ["gender"],
    "template": PAIRWISE,
    "choices": [" A", " B"],
}


def test_pairwise_finds_the_planted_position_bias_and_no_group_effect(
    screeners: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = _spec(screeners("position"), _dataset(tmp_path), PAIRWISE_PROBE)
    del spec["model"]["prompt"]  # the probe brings its own prompt
    results = run_audit(spec, tmp_path / "out")
    (entry,) = results["probes"]
    assert entry["kind"] == "pairwise-choice"
    summary = entry["summary"]
    # trained to pick the first candidate 80% of the time: P(first) - 0.5 ~ 0.3
    assert 0.2 < summary["position_bias"] < 0.45
    assert summary["position_bias_ci"][0] > 0.1
    assert summary["position_bias_p_value"] < 0.01
    female = next(g for g in entry["groups"] if g["group"] == "female")
    # per order the group's candidate is chosen mostly when shown first ...
    assert female["choice_rate_first"] > 0.7 and female["choice_rate_second"] < 0.3
    # ... and the two orders cancel: no group effect
    assert female["choice_rate"] == pytest.approx(0.5, abs=0.01)
    assert abs(female["choice_gap"]) < 0.01
    assert female["p_value"] > 0.01
    (gap,) = _findings(results, "choice_gap")
    assert gap["status"] == "pass" and gap["group"] == "female"
    assert results["verdict"] == "pass"
    assert (tmp_path / "out" / "report.html").stat().st_size > 0


def test_bf16_precision_is_what_runs_and_is_recorded(
    screeners: Callable[[str], Path], tmp_path: Path
) -> None:
    data = _dataset(tmp_path, rows=60)
    fp32 = run_audit(_spec(screeners("biased"), data, NAME_SWAP), store=False)
    bf16 = run_audit(_spec(screeners("biased"), data, NAME_SWAP, precision="bf16"), store=False)
    assert bf16["model"]["precision"] == "bf16"
    assert bf16["manifest"]["precision"] == {
        "requested": "bf16",
        "resolved": "bf16",
        "checkpoint_dtype": "float32",
        "device": "cpu",
        "autocast": False,
        "linear_backend": "stock",  # oneDNN routing is for float32 layers only
    }
    gaps = [
        next(g["score_gap"] for g in r["probes"][0]["groups"] if g["group"] == "female")
        for r in (fp32, bf16)
    ]
    assert gaps[1] == pytest.approx(gaps[0], abs=0.02)  # same conclusion, not the same bits
    assert gaps[1] != gaps[0]
