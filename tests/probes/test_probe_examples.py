"""Every registered probe runs its own example, and its output matches its typed models.

Like Hugging Face ``evaluate``'s common test over each module's own examples: a
probe declares a small example (:class:`probes.base.ProbeExample`: config, tiny
inputs, the properties its result must have) and its results.json shape
(``group_model``, ``summary_model``, ``entry_fields``). For each probe this test
runs the example with the model it names, checks every property, validates each
entry against the probe's entry model and requires that the probe declares every
key it writes (no undeclared extras), and that the entry survives a JSON round trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from probes import get_probe, list_probes
from probes.examples import applicants
from probes.models import load_model
from probes.models.huggingface import load_huggingface
from probes.result_models import ResultGroup, ResultSummary, entry_model, undeclared_keys
from tests.probes.test_common import HashScorer

PROBES = list_probes()


@pytest.fixture(scope="module")
def example_models(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> dict[str, Callable[[], Any]]:
    """The models an example may name (``ProbeExample.model``), built on demand."""
    folder = tmp_path_factory.mktemp("example-models")

    def sklearn() -> Any:
        frame = applicants(400)
        features = pd.DataFrame({"x1": frame.x1, "m": frame.m})
        est = LogisticRegression().fit(features, frame.x1 + features.m > 0.5)
        sio.dump(est, folder / "clf.skops")
        return load_model(kind="sklearn", path=folder / "clf.skops", features=["x1", "m"])

    def hf(task: str) -> Callable[[], Any]:
        return lambda: load_huggingface(path=tiny_models[task], task=task, device="cpu")

    return {
        "sklearn": sklearn,
        "text-scorer": HashScorer,
        **{task: hf(task) for task in ("fill-mask", "embedding", "causal-lm")},
    }


@pytest.mark.parametrize("name", PROBES)
def test_every_builtin_probe_declares_its_results_and_an_example(name: str) -> None:
    cls = get_probe(name)
    assert cls.example is not None, f"{name}: no example"
    assert cls.group_model is not ResultGroup, f"{name}: no group_model"
    assert cls.summary_model is not ResultSummary, f"{name}: no summary_model"


@pytest.mark.parametrize("name", PROBES)
def test_example_runs_and_matches_the_typed_models(
    name: str, example_models: dict[str, Callable[[], Any]]
) -> None:
    cls = get_probe(name)
    example = cls.example
    assert example is not None
    model = example_models[example.model]() if example.model else None
    config = cls.config_model.model_validate(dict(example.config))
    result = cls().run(data=example.inputs(), model=model, config=config)

    properties = dict(example.properties(result))
    assert properties, f"{name}: the example states no property"
    failed = [what for what, holds in properties.items() if not holds]
    assert not failed, f"{name}: the example's result does not show: {failed}"

    assert result.entries
    typed_model = entry_model(cls)
    for entry in result.entries:
        doc = json.loads(json.dumps(entry.model_dump(mode="json"), allow_nan=False))
        typed = typed_model.model_validate(doc)
        assert typed.kind == name
        assert undeclared_keys(typed) == [], f"{name}: keys its models do not declare"
        assert typed_model.model_validate_json(typed.model_dump_json()) == typed
