"""Conformance tests every registered probe passes (like scikit-learn's ``test_common.py``).

Each probe needs a case below: how to build its input, model and config for a
normal run, for an empty input, and for input with a single group. A new
probe without a case fails ``test_every_registered_probe_has_a_case``, so it
cannot skip these checks. For every probe:

- its config model has a JSON schema, its ``kind`` is the probe's name, and an
  unknown key is refused naming the key;
- a normal run returns a result that survives a JSON round trip unchanged and
  is identical when run again with the same seed;
- an empty input, and an input where everyone is in one group, give either a
  valid result or a :class:`ProbeError` with a message, never another exception.
  For probes that read no dataset (mlm-stereotype, embedding-association) "empty"
  is an empty pairs/tests file and "one group" the smallest selection (one bias
  type, one test); for counterfactual-text and pairwise-choice, texts with
  nothing to swap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression

from probes import ProbeError, ProbeInput, ProbeResult, get_probe, list_probes
from probes.mlm_stereotype import BUILTIN_PAIRS
from probes.models import load_model
from probes.models.huggingface import load_huggingface

Case = tuple[ProbeInput, Any, dict[str, Any]]


@dataclass(frozen=True)
class Cases:
    normal: Callable[[], Case]
    empty: Callable[[], Case]
    one_group: Callable[[], Case]


class HashScorer:
    """A deterministic text scorer with the adapter interface (no weights)."""

    kind = "test"
    sha256 = "0" * 64
    threshold = 0.5

    def score(self, texts: list[str]) -> np.ndarray:
        return np.array([(sum(map(ord, t)) % 997) / 997 for t in texts], dtype=float)

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.score(texts) >= self.threshold


def _frame(n: int, *, one_group: bool = False, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = np.full(n, "f") if one_group else rng.choice(["f", "m"], size=n)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "sex": pd.Categorical(sex, categories=["f", "m"] if not one_group else ["f"]),
            "race": pd.Categorical(rng.choice(["a", "b", "c"], size=n)),
        }
    )


def _outcomes(frame: pd.DataFrame, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.random(len(frame)) < 0.5
    y_pred = rng.random(len(frame)) < np.where(frame["sex"].astype(str) == "m", 0.6, 0.4)
    return y_true, y_pred


def _counts_case(kind: str, n: int, one_group: bool = False) -> Case:
    frame = _frame(n, one_group=one_group)
    y_true, y_pred = _outcomes(frame)
    data = ProbeInput(frame=frame, protected=("sex", "race"), y_true=y_true, y_pred=y_pred, seed=3)
    return data, None, {"kind": kind}


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    frame = _frame(400)
    features = pd.DataFrame({"x1": frame.x1, "m": (frame.sex == "m").astype(float)})
    est = LogisticRegression().fit(features, frame.x1 + features.m > 0.5)
    path = tmp_path_factory.mktemp("common") / "clf.skops"
    sio.dump(est, path)
    return path


@pytest.fixture(scope="module")
def cases(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], sklearn_model: Path
) -> dict[str, Cases]:
    root = tmp_path_factory.mktemp("common-cases")
    empty_pairs = root / "pairs.jsonl"
    empty_pairs.write_text("")
    # two built-in pairs of each bias type: every group, a sixth of the masked copies
    # (test_mlm_stereotype.py runs the built-in set itself)
    some_pairs = root / "some-pairs.jsonl"
    per_type: dict[str, list[str]] = {}
    for line in BUILTIN_PAIRS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            per_type.setdefault(json.loads(line)["bias_type"], []).append(line)
    some_pairs.write_text("\n".join(x for rows in per_type.values() for x in rows[:2]) + "\n")
    empty_tests = root / "weat.json"
    empty_tests.write_text(json.dumps({"tests": {}}))
    fill_mask = load_huggingface(path=tiny_models["fill-mask"], task="fill-mask", device="cpu")
    embedding = load_huggingface(path=tiny_models["embedding"], task="embedding", device="cpu")
    causal = load_huggingface(path=tiny_models["causal-lm"], task="causal-lm", device="cpu")
    no_data = ProbeInput(frame=pd.DataFrame({"g": ["a"]}), protected=("g",), seed=5)

    def tabular(n: int, one_group: bool = False) -> Case:
        frame = _frame(n, one_group=one_group).rename(columns={"x2": "unused"})
        frame["m"] = (frame.sex.astype(str) == "m").astype(float)
        model = load_model(kind="sklearn", path=sklearn_model, features=["x1", "m"])
        data = ProbeInput(frame=frame, protected=("sex",), seed=3)
        return data, model, {"kind": "counterfactual-tabular", "attribute": "sex"}

    def text(rows: list[str]) -> Case:
        data = ProbeInput(frame=pd.DataFrame({"cv": rows}), protected=(), seed=3)
        cfg = {"kind": "counterfactual-text", "text_column": "cv", "swap": "pronouns"}
        return data, HashScorer(), cfg

    def outcome(n: int, one_group: bool = False) -> Case:
        frame = _frame(n, one_group=one_group)
        frame["apr"] = 6.0 + frame.x1 * 0.3 + (frame.sex.astype(str) == "m") * 0.2
        data = ProbeInput(frame=frame, protected=("sex", "race"), seed=3)
        return data, None, {"kind": "outcome-disparity", "outcome": "apr", "controls": ["x2"]}

    def pairwise(rows: list[str]) -> Case:
        data = ProbeInput(frame=pd.DataFrame({"cv": rows}), protected=(), seed=3)
        cfg = {"kind": "pairwise-choice", "text_column": "cv", "swap": "pronouns"}
        return data, causal, cfg

    def lda(n: int, one_group: bool = False) -> Case:
        frame = _frame(n, one_group=one_group)
        frame["m"] = (frame.sex.astype(str) == "m").astype(float)
        model = load_model(kind="sklearn", path=sklearn_model, features=["x1", "m"])
        y_true = (frame.x1 + 0.5 * np.random.default_rng(2).normal(size=n)) > 0
        train = root / f"lda-train-{n}-{one_group}.csv"
        frame.assign(y=y_true.astype(int)).to_csv(train, index=False)
        if n == 0:  # an empty holdout; the training file still has both outcomes
            _frame(50).assign(m=0.0, y=[0, 1] * 25).to_csv(train, index=False)
        data = ProbeInput(frame=frame, protected=("sex",), y_true=y_true, label="y", seed=3)
        cfg = {"kind": "lda-search", "attribute": "sex", "train": str(train), "n_jobs": 1}
        return data, model, {**cfg, "reductions": False, "bootstrap": 50}

    words = "He said his plan was good and she agreed with him"
    return {
        "lda-search": Cases(
            normal=lambda: lda(300),
            empty=lambda: lda(0),
            one_group=lambda: lda(300, one_group=True),
        ),
        "demographic": Cases(
            normal=lambda: _counts_case("demographic", 300),
            empty=lambda: _counts_case("demographic", 0),
            one_group=lambda: _counts_case("demographic", 300, one_group=True),
        ),
        "dataset": Cases(
            normal=lambda: _counts_case("dataset", 300),
            empty=lambda: _counts_case("dataset", 0),
            one_group=lambda: _counts_case("dataset", 300, one_group=True),
        ),
        "outcome-disparity": Cases(
            normal=lambda: outcome(300),
            empty=lambda: outcome(0),
            one_group=lambda: outcome(300, one_group=True),
        ),
        "counterfactual-tabular": Cases(
            normal=lambda: tabular(200),
            empty=lambda: tabular(0),
            one_group=lambda: tabular(200, one_group=True),
        ),
        "counterfactual-text": Cases(
            normal=lambda: text([f"{words} ({i})." for i in range(20)]),
            empty=lambda: text([]),
            one_group=lambda: text(["The plan was good."] * 5),  # nothing to swap
        ),
        "pairwise-choice": Cases(
            normal=lambda: pairwise([f"{words} ({i})." for i in range(12)]),
            empty=lambda: pairwise([]),
            one_group=lambda: pairwise(["The plan was good."] * 5),  # nothing to swap
        ),
        "mlm-stereotype": Cases(
            normal=lambda: (
                no_data,
                fill_mask,
                {"kind": "mlm-stereotype", "pairs_path": str(some_pairs)},
            ),
            empty=lambda: (
                no_data,
                fill_mask,
                {"kind": "mlm-stereotype", "pairs_path": str(empty_pairs)},
            ),
            one_group=lambda: (
                no_data,
                fill_mask,
                {"kind": "mlm-stereotype", "bias_types": ["gender"]},
            ),
        ),
        "embedding-association": Cases(
            normal=lambda: (
                no_data,
                embedding,
                {"kind": "embedding-association", "permutations": 200, "bootstrap": 50},
            ),
            empty=lambda: (
                no_data,
                embedding,
                {"kind": "embedding-association", "tests_path": str(empty_tests)},
            ),
            one_group=lambda: (
                no_data,
                embedding,
                {
                    "kind": "embedding-association",
                    "tests": ["weat3-names-pleasant"],
                    "permutations": 200,
                },
            ),
        ),
    }


def _run(name: str, case: Case) -> ProbeResult:
    data, model, raw = case
    cls = get_probe(name)
    return cls().run(data=data, model=model, config=cls.config_model.model_validate(raw))


PROBES = list_probes()


def test_every_registered_probe_has_a_case(cases: dict[str, Cases]) -> None:
    assert sorted(cases) == PROBES


@pytest.mark.parametrize("name", PROBES)
def test_config_schema_and_unknown_keys(name: str, cases: dict[str, Cases]) -> None:
    cls = get_probe(name)
    assert cls.name == name
    schema = cls.config_model.model_json_schema()
    assert schema["properties"]["kind"].get("const", name) == name
    raw = cases[name].normal()[2]
    assert cls.config_model.model_validate(raw).kind == name
    with pytest.raises(ValidationError, match="no_such_option"):
        cls.config_model.model_validate({**raw, "no_such_option": 1})


@pytest.mark.parametrize("name", PROBES)
def test_result_round_trips_through_json_and_is_deterministic(
    name: str, cases: dict[str, Cases]
) -> None:
    first = _run(name, cases[name].normal())
    assert first.entries, f"{name}: a normal run produced no entries"
    text = first.model_dump_json()
    assert ProbeResult.model_validate_json(text).model_dump_json() == text
    json.loads(text)  # plain JSON: no NaN or Infinity tokens (allow_nan=False below)
    json.dumps(json.loads(text), allow_nan=False)
    again = _run(name, cases[name].normal())
    assert again.model_dump_json() == text, f"{name}: two runs with one seed differ"


@pytest.mark.parametrize("variant", ["empty", "one_group"])
@pytest.mark.parametrize("name", PROBES)
def test_degenerate_input_gives_a_result_or_a_clear_error(
    name: str, variant: str, cases: dict[str, Cases]
) -> None:
    case = getattr(cases[name], variant)()
    try:
        result = _run(name, case)
    except ProbeError as exc:
        assert str(exc).strip(), f"{name}/{variant}: ProbeError without a message"
        return
    text = result.model_dump_json()
    json.dumps(json.loads(text), allow_nan=False)
    assert ProbeResult.model_validate_json(text).model_dump_json() == text
