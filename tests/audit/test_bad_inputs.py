"""Bad inputs get a clear message naming the field/column/file, and CLI exit code 2."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest
import yaml

from audit.cli import main
from tests.audit.conftest import spec_for


def _run(tmp_path: Path, spec: dict | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "spec.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    code = main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists() or code != 2
    return code, err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, spec_for(tmp_path / "nope.csv"), capsys)
    assert code == 2
    assert "dataset.path" in err and "nope.csv" in err


def test_model_id_is_for_the_service(tmp_path, hiring_csv, capsys) -> None:
    spec = spec_for(hiring_csv)
    spec["model"] = {"kind": "sklearn", "id": "3c9e0000-0000-0000-0000-000000000000"}
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2
    assert "model.id" in err and "model.path" in err


def test_missing_column(tmp_path, hiring_csv, capsys) -> None:
    spec = spec_for(hiring_csv)
    spec["dataset"]["protected"] = ["sex", "ethnicity"]  # type: ignore[index]
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2
    assert "dataset.protected[1]" in err and "'ethnicity'" in err and "applicants.csv" in err


def test_one_group_only(tmp_path, capsys) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"sex": ["female"] * 10, "advanced": [1, 0] * 5, "qualified": 1}).to_csv(
        path, index=False
    )
    spec = spec_for(path)
    spec["dataset"]["protected"] = ["sex"]  # type: ignore[index]
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2
    assert "dataset.protected" in err and "only one group" in err and "'female'" in err


def test_favorable_label_not_in_labels(tmp_path, hiring_csv, capsys) -> None:
    spec = spec_for(hiring_csv)
    spec["dataset"]["favorable_label"] = "hired"  # type: ignore[index]
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2
    assert "dataset.favorable_label" in err and "'hired'" in err and "'qualified'" in err


def test_nan_predictions(tmp_path, capsys) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame(
        {"sex": ["f", "m", "f", "m"], "advanced": [1, None, 0, 1], "qualified": [1, 0, 1, 0]}
    ).to_csv(path, index=False)
    spec = spec_for(path)
    spec["dataset"]["protected"] = ["sex"]  # type: ignore[index]
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2
    assert "dataset.prediction" in err and "'advanced'" in err and "row 1" in err


def test_malformed_yaml(tmp_path, capsys) -> None:
    code, err = _run(tmp_path, "name: x\ndataset: [unclosed\n", capsys)
    assert code == 2
    assert "not valid YAML" in err and "line" in err


def test_unknown_probe(tmp_path, hiring_csv, capsys) -> None:
    code, err = _run(tmp_path, spec_for(hiring_csv, probes=[{"kind": "vibes"}]), capsys)
    assert code == 2
    assert "probes[0].kind" in err and "'vibes'" in err and "demographic" in err


def test_unknown_key_and_wrong_type_name_the_field_path(tmp_path, hiring_csv, capsys) -> None:
    spec = spec_for(hiring_csv, probes=[{"kind": "demographic", "intersectionl": True}])
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2 and "probes[0].intersectionl" in err
    spec = spec_for(hiring_csv, colour="red")
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2 and "colour" in err
    spec = spec_for(hiring_csv)
    spec["policy"] = {"min_impact_ratio": "high"}
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2 and "policy.min_impact_ratio" in err


class _Payload:
    def __reduce__(self):  # pragma: no cover - must never run
        import os

        return (os.system, ("touch /tmp/biasaudit-pwned-by-test",))


def test_pickle_model_without_trusted_is_refused(tmp_path, hiring_csv, capsys) -> None:
    marker = Path("/tmp/biasaudit-pwned-by-test")
    marker.unlink(missing_ok=True)
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps(_Payload()))
    spec = spec_for(hiring_csv, model={"kind": "sklearn", "path": str(model)})
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2
    assert "model.path" in err and "pickle" in err and "trusted" in err and "skops" in err
    assert not marker.exists()


def test_invalid_audit_is_recorded_as_failed_not_succeeded(tmp_path, hiring_csv, embedded_home):
    import sqlite3

    spec = spec_for(hiring_csv)
    spec["dataset"]["favorable_label"] = "hired"  # type: ignore[index]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 2
    rows = (
        sqlite3.connect(embedded_home / "biasaudit.db")
        .execute("select status, error from audits")
        .fetchall()
    )
    assert len(rows) == 1 and rows[0][0] == "failed" and "favorable_label" in rows[0][1]
    assert sqlite3.connect(embedded_home / "biasaudit.db").execute(
        "select count(*) from results"
    ).fetchone() == (0,)


def test_dataset_without_protected_columns_or_missing_dataset(tmp_path, hiring_csv, capsys) -> None:
    spec = spec_for(hiring_csv)
    spec["dataset"]["protected"] = []  # type: ignore[index]
    code, err = _run(tmp_path, spec, capsys)
    assert code == 2 and "dataset.protected" in err and "at least one" in err
    code, err = _run(tmp_path, {"name": "no-data", "probes": [{"kind": "demographic"}]}, capsys)
    assert code == 2 and "dataset" in err and "probes[0]" in err and "'demographic'" in err
