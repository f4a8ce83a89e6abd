"""Spec errors: all at once, "did you mean", plain values, requirements that follow the probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.cli.main import main
from audit.engine.run import run_audit
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError, SpecError
from tests.factories import spec_for


def test_every_spec_error_is_reported_at_once(tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "x.csv")
    spec["datset"] = {}  # misspelt top-level key
    spec["dataset"]["protectd"] = ["sex"]  # misspelt dataset key
    spec["policy"] = {"min_impact_ratoi": 0.8}  # misspelt threshold
    spec["probes"] = [{"kind": "demographic", "intersectionl": True}]  # misspelt probe key
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    paths = [p for p, _ in info.value.errors]
    assert {"datset", "dataset.protectd", "policy.min_impact_ratoi"} <= set(paths), paths
    assert "probes[0].intersectionl" in paths, paths
    text = str(info.value)
    assert "4 errors" in text
    assert "did you mean 'dataset'?" in text
    assert "did you mean 'protected'?" in text
    assert "did you mean 'min_impact_ratio'?" in text
    assert "did you mean 'intersectional'?" in text


def test_cli_lists_every_error_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: x\ndomian: hiring\ndataset: {path: a.csv, protected: [sex], lable: y}\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "domian" in err and "did you mean 'domain'?" in err
    assert "dataset.lable" in err and "did you mean 'label'?" in err


def test_missing_columns_all_named_with_a_suggestion(hiring_csv: Path) -> None:
    spec = spec_for(hiring_csv)
    spec["dataset"]["protected"] = ["Sex", "race"]
    spec["dataset"]["label"] = "qualifed"
    with pytest.raises(AuditInputError) as info:
        run_audit(spec, store=False)
    text = str(info.value)
    assert "dataset.protected[0]: column 'Sex' not found" in text
    assert "(did you mean 'sex'?)" in text
    assert "dataset.label: column 'qualifed' not found" in text
    assert "(did you mean 'qualified'?)" in text


def test_favorable_value_missing_prints_plain_values(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "sex": ["f", "m"] * 50,
            "label": np.zeros(100, dtype=np.int64),
            "pred": np.arange(100) % 2,
        }
    )
    spec = {
        "name": "x",
        "dataset": {"label": "label", "prediction": "pred", "protected": ["sex"]},
    }
    with pytest.raises(AuditInputError) as info:
        run_audit(spec, data=frame, store=False)
    text = str(info.value)
    assert "values seen: 0" in text
    assert "np.int64" not in text
    assert "the label column must contain the favorable value" in text


def test_model_only_text_audit_needs_no_protected_column() -> None:
    spec = {
        "name": "resumes",
        "dataset": {"path": "resumes.csv"},
        "model": {"kind": "huggingface", "path": "m", "task": "text-classification"},
        "probes": [{"kind": "counterfactual-text", "text_column": "resume"}],
    }
    parsed, _ = parse_spec(spec)  # no dataset.protected needed
    assert parsed.dataset.protected == []
    group_probe = dict(spec, probes=[*spec["probes"], {"kind": "demographic"}])
    with pytest.raises(SpecError, match=r"dataset.protected: .*probes\[1\] \(kind 'demographic'\)"):
        parse_spec(group_probe)


def test_a_bundled_example_spec_without_its_data_says_how_to_make_it() -> None:
    from audit.examples import hiring

    spec = Path(hiring.__file__).with_name("hiring.yaml")
    with pytest.raises(AuditInputError) as info:
        run_audit(spec, store=False)
    text = str(info.value)
    assert "dataset.path: file not found" in text
    assert f"relative to the spec's folder {spec.parent}" in text
    assert "python -m audit.examples.<name> --out DIR" in text and "biasaudit demo" in text
