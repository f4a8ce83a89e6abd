"""run_audit / `biasaudit run` end to end: schema, exit codes, chunking, dtypes, unknowns."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from audit import run_audit
from audit.cli import main
from audit.settings import get_settings
from tests.audit.conftest import spec_for

CONTRACT_GROUP_KEYS = {
    "group",
    "levels",
    "n",
    "selected",
    "selection_rate",
    "selection_rate_ci",
    "impact_ratio",
    "tpr",
    "fpr",
    "fnr",
    "precision",
    "accuracy",
}
CONTRACT_SUMMARY_KEYS = {
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equal_opportunity_difference",
}


def _strip(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc.pop("audit")
    doc.pop("manifest")
    doc["dataset"].pop("chunked", None)
    doc["dataset"].pop("path", None)
    return doc


def test_results_follow_the_contract_and_are_stored(tmp_path, hiring_csv, embedded_home) -> None:
    out = tmp_path / "out"
    results = run_audit(spec_for(hiring_csv), out)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results
    assert (out / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert results["schema_version"] == 1
    assert set(results["audit"]) >= {"id", "name", "spec_sha256", "started_at", "finished_at"}
    assert results["model"]["kind"] == "predictions"
    assert results["dataset"]["rows"] == 3000 and len(results["dataset"]["sha256"]) == 64
    attrs = [p["attribute"] for p in results["probes"]]
    assert attrs == ["sex", "race", "sex&race"]
    for entry in results["probes"]:
        assert entry["kind"] == "demographic"
        assert set(entry["summary"]) >= CONTRACT_SUMMARY_KEYS
        for g in entry["groups"]:
            assert set(g) >= CONTRACT_GROUP_KEYS
    inter = results["probes"][2]["groups"][0]
    assert "&" in inter["group"] and set(inter["levels"]) == {"sex", "race"}
    failed = [f for f in results["findings"] if f["status"] == "fail"]
    assert any(f["attribute"] == "sex" and f["group"] == "female" for f in failed)
    assert results["verdict"] == "fail"
    db = sqlite3.connect(embedded_home / "biasaudit.db")
    assert db.execute("select id, status, verdict from audits").fetchall() == [
        (results["audit"]["id"], "succeeded", "fail")
    ]
    assert db.execute("select count(*) from findings").fetchone()[0] == len(results["findings"])


def test_missing_protected_values_are_an_explicit_unknown_group(hiring_csv) -> None:
    results = run_audit(spec_for(hiring_csv), store=False)
    race = next(p for p in results["probes"] if p["attribute"] == "race")
    unknown = next(g for g in race["groups"] if g["group"] == "unknown")
    raw = pd.read_csv(hiring_csv)
    assert unknown["n"] == int(raw["race"].isna().sum()) > 0
    assert results["manifest"]["unknown_counts"]["race"] == unknown["n"]


def test_cli_exit_codes(tmp_path, hiring_csv, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_for(hiring_csv)))
    assert main(["run", str(spec), "--out", str(tmp_path / "a")]) == 1
    assert "verdict FAIL" in capsys.readouterr().out
    lenient = spec_for(hiring_csv, policy={"min_impact_ratio": 0.3, "min_group_size": 1})
    spec.write_text(yaml.safe_dump(lenient))
    assert main(["run", str(spec), "--out", str(tmp_path / "b")]) == 0


@pytest.mark.parametrize("encoding", ["int", "str", "bool", "float"])
def test_label_dtypes_give_identical_results(tmp_path, hiring_csv, encoding) -> None:
    frame = pd.read_csv(hiring_csv)
    convert = {
        "int": lambda s: s,
        "str": lambda s: s.astype(str),
        "bool": lambda s: s.astype(bool),
        "float": lambda s: s.astype(float),
    }[encoding]
    frame["advanced"] = convert(frame["advanced"])
    frame["qualified"] = convert(frame["qualified"])
    path = tmp_path / f"{encoding}.csv"
    frame.to_csv(path, index=False)
    favorable = {"int": 1, "str": "1", "bool": True, "float": 1.0}[encoding]
    spec = spec_for(path)
    spec["dataset"]["favorable_label"] = favorable  # type: ignore[index]
    base = _strip(run_audit(spec_for(hiring_csv), store=False))
    got = _strip(run_audit(spec, store=False))
    got["dataset"].pop("sha256"), base["dataset"].pop("sha256")
    assert got == base


def test_parquet_equals_csv(tmp_path, hiring_csv) -> None:
    path = tmp_path / "applicants.parquet"
    pd.read_csv(hiring_csv).to_parquet(path)
    a = _strip(run_audit(spec_for(hiring_csv), store=False))
    b = _strip(run_audit(spec_for(path), store=False))
    a["dataset"].pop("sha256"), b["dataset"].pop("sha256")
    assert a == b


def test_chunked_reading_equals_in_memory(tmp_path, hiring_csv, monkeypatch) -> None:
    whole = run_audit(spec_for(hiring_csv), store=False)
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1000")
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "700")
    get_settings.cache_clear()
    try:
        chunked = run_audit(spec_for(hiring_csv), store=False)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert chunked["dataset"]["chunked"] is True
    assert _strip(chunked) == _strip(whole)


def test_manifest_reproduces_the_numbers(hiring_csv) -> None:
    first = run_audit(spec_for(hiring_csv, probes=[{"kind": "demographic", "bootstrap": 200}]))
    manifest = first["manifest"]
    assert manifest["versions"]["fairlearn"] and manifest["versions"]["numpy"]
    assert manifest["thresholds"]["min_impact_ratio"] == 0.8
    again = run_audit(manifest["spec"], store=False)
    assert _strip(again) == _strip(first)


def test_score_column_adds_auc_calibration_and_scoring_rate(hiring_csv) -> None:
    spec = spec_for(hiring_csv)
    spec["dataset"]["score"] = "score"  # type: ignore[index]
    results = run_audit(spec, store=False)
    sex = results["probes"][0]
    for g in sex["groups"]:
        assert 0 <= g["scoring_rate"] <= 1 and 0 <= g["auc"] <= 1
        assert g["calibration_error"] >= 0
    scores = pd.read_csv(hiring_csv)
    above = scores["score"] > np.median(scores["score"])
    female = scores["sex"] == "female"
    g = next(g for g in sex["groups"] if g["group"] == "female")
    assert g["scoring_rate"] == pytest.approx(above[female].mean())
    assert any(f["metric"] == "scoring_impact_ratio" for f in results["findings"])


def test_relative_dataset_path_resolves_against_the_spec_file(tmp_path, hiring_csv) -> None:
    spec = spec_for(Path(hiring_csv.name))
    path = hiring_csv.parent / "spec.json"
    path.write_text(json.dumps(spec))
    assert run_audit(path, store=False)["dataset"]["rows"] == 3000


def test_strata_give_cddpl_per_group(tmp_path, hiring_csv) -> None:
    from probes.clarify import cddpl

    frame = pd.read_csv(hiring_csv)
    frame["dept"] = np.where(np.arange(len(frame)) % 3 == 0, "eng", "sales")
    path = tmp_path / "strata.csv"
    frame.to_csv(path, index=False)
    spec = spec_for(path, probes=[{"kind": "demographic"}, {"kind": "dataset"}])
    spec["dataset"]["strata"] = "dept"  # type: ignore[index]
    results = run_audit(spec, store=False)
    g = next(g for g in results["probes"][0]["groups"] if g["group"] == "female")
    female = frame["sex"] == "female"
    pred = frame["advanced"] == 1
    cells = []
    for mask in (female, ~female):
        per = []
        for d in ("eng", "sales"):
            m = mask & (frame["dept"] == d)
            per.append([int((m & ~pred).sum()), int((m & pred).sum()), 0, 0])
        cells.append(np.array(per))
    assert g["cddpl"] == pytest.approx(cddpl(facet_by_stratum=cells[0], rest_by_stratum=cells[1]))
    data_entry = next(p for p in results["probes"] if p["kind"] == "dataset")
    assert any(gg["CDDL"] is not None for gg in data_entry["groups"])
