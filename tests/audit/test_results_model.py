"""results.json has a typed model (``AuditResults``) and a JSON Schema, and both hold.

- docs/results.schema.json is the generated schema, current;
- every bundled example audit (examples/: hiring, lending, lending-proxy) produces a
  document that ``AuditResults`` validates with every probe entry in its probe's typed
  model, whose built-in models declare every key written, that the model dumps back
  to exactly the same document, and that the JSON Schema accepts (jsonschema);
- a third-party probe that declares no models still runs, and its entries validate
  against the permissive models; the schema refuses a document that breaks a
  typed field (so it is not vacuous).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from audit import run_audit
from audit.engine.results_model import AuditResults, render, results_json_schema
from audit.examples import EXAMPLES, generate
from probes import base as probe_base
from probes.base import Probe, ProbeConfig, ProbeEntry, ProbeInput, ProbeResult, register_probe
from probes.result_models import ResultEntry, undeclared_keys

ROOT = Path(__file__).resolve().parents[2]


def test_schema_file_is_current() -> None:
    current = (ROOT / "docs" / "results.schema.json").read_text(encoding="utf-8")
    assert current == render(), (
        "run: python -m audit.engine.results_model > docs/results.schema.json"
    )


@pytest.fixture(scope="module")
def example_documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = {}
    for name in sorted(EXAMPLES):
        folder = tmp_path_factory.mktemp(name)
        out[name] = run_audit(generate(name, out_dir=folder), store=False).to_dict()
    return out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_audit_validates(
    name: str, example_documents: dict[str, dict[str, Any]]
) -> None:
    doc = example_documents[name]
    typed = AuditResults.model_validate(doc)
    assert typed.probes and all(type(e) is not ResultEntry for e in typed.probes)
    assert [undeclared_keys(e) for e in typed.probes] == [[] for _ in typed.probes]
    assert typed.model_dump(mode="json", exclude_unset=True) == doc
    jsonschema.Draft202012Validator(results_json_schema()).validate(doc)


def test_schema_refuses_a_broken_typed_field(example_documents: dict[str, Any]) -> None:
    doc = copy.deepcopy(example_documents["hiring"])
    doc["probes"][0]["groups"][0]["selection_rate"] = "high"
    with pytest.raises(jsonschema.ValidationError, match="high"):
        jsonschema.Draft202012Validator(results_json_schema()).validate(doc)
    with pytest.raises(ValidationError, match="selection_rate"):
        AuditResults.model_validate(doc)


class _EvenConfig(ProbeConfig):
    kind: Literal["even-split"] = "even-split"


class _EvenSplit(Probe):
    """A third-party probe that declares no result models: the share of each group."""

    config_model = _EvenConfig

    def run(self, *, data: ProbeInput, model: Any = None, config: Any) -> ProbeResult:
        col = data.protected[0]
        shares = data.frame[col].astype(str).value_counts(normalize=True).sort_index()
        groups = [{"group": g, "share": float(s), "odd": [1, "x"]} for g, s in shares.items()]
        return ProbeResult(entries=[ProbeEntry(kind=self.name, attribute=col, groups=groups)])


@pytest.fixture
def even_split() -> Iterator[None]:
    register_probe("even-split", kind="group")(_EvenSplit)
    try:
        yield
    finally:
        probe_base._REGISTRY.pop("even-split", None)


def test_a_probe_without_models_falls_back_to_the_permissive_ones(
    even_split: None, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"sex": rng.choice(["f", "m"], 200), "pred": rng.integers(0, 2, 200)})
    spec = {
        "name": "no-models",
        "dataset": {"prediction": "pred", "protected": ["sex"]},
        "probes": [{"kind": "even-split"}],
    }
    doc = run_audit(spec, data=frame, store=False).to_dict()
    typed = AuditResults.model_validate(doc)
    (entry,) = typed.probes
    assert type(entry).__name__ == "EvenSplitEntry"
    assert [g.group for g in entry.groups] == ["f", "m"]
    assert entry.groups[0].model_extra == {
        "share": doc["probes"][0]["groups"][0]["share"],
        "odd": [1, "x"],
    }
    assert typed.findings == [] and typed.verdict == "pass"
    schema = results_json_schema()
    assert "EvenSplitEntry" in schema["$defs"]
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert json.loads(json.dumps(doc)) == typed.model_dump(mode="json", exclude_unset=True)
