"""lda-search through the service: the best alternative is stored and downloaded.

A real ``serve`` and Celery ``worker`` (PostgreSQL, Redis): ``biasaudit submit
--out`` uploads German credit (with a planted proxy) and the model in use, the
worker runs the search on a seeded split of the audited rows, stores the best
alternative with the results, and the CLI downloads it beside results.json. The
file loads through the safe skops loader (our allowlist, nothing trusted by hand)
and its decisions on the holdout rows give exactly the selection rates and the
lowest impact ratio results.json reports for ``best``.

Then, on the same services, a spec whose search trains on a file (``train``):
``biasaudit submit`` uploads that file like the dataset and sends its id
(``train_id``); the worker reads its copy inside the project's folder, and the
search equals ``run_audit`` on the local files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from audit.storage import repo, session_scope
from probes.lda.rows import split_rows
from probes.models.sklearn import load_sklearn_estimator
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

BIASAUDIT = str(Path(sys.executable).with_name("biasaudit"))


def _token() -> str:
    with session_scope() as session:
        token, _ = repo.create_token(session=session, project="acme", role="submitter")
    return token


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """German credit with a planted proxy (built before the stack's settings apply: the
    public data lives in the user's data folder, not the services')."""
    from tests.probes.lda_data import german_case

    folder = tmp_path_factory.mktemp("lda-case")
    return folder, german_case(folder, planted=True)


def _submit(base: str, spec_path: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIASAUDIT_")}
    env.update(BIASAUDIT_ARTIFACT_DIR=str(cwd / "client"), BIASAUDIT_TOKEN=_token())
    return subprocess.run(
        [BIASAUDIT, "submit", str(spec_path), "--api", base, "--out", str(out)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_submit_downloads_the_best_alternative_and_it_decides_as_reported(
    case: tuple[Path, dict[str, Any]], local: Stack, tmp_path: Path
) -> None:
    _, base, _ = local.worker_and_api("lda", queues="gpu,cpu")
    folder, spec = case
    probe = spec["probes"][0]
    del probe["train"]  # the service has only the uploaded dataset: split it
    probe.update(
        holdout_size=0.5, reductions=False, hyperparameters=False, seeds=0, bootstrap=50, n_jobs=1
    )
    spec_path = folder / "service.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    submitted = _submit(base, spec_path, out, tmp_path)
    assert submitted.returncode in (0, 1), submitted.stderr

    results = json.loads((out / "results.json").read_text())
    entry = next(p for p in results["probes"] if p["kind"] == "lda-search")
    best, name = entry["best"], entry["summary"]["best_model_file"]
    assert best is not None and name == "lda-best-sex.skops"
    assert f"downloaded {out / name}" in submitted.stderr
    model = load_sklearn_estimator(out / name)  # the allowlist, nothing trusted by hand

    frame = pd.read_csv(folder / "holdout.csv")  # the rows the service audited
    label = (frame["credit_risk"] == 1).to_numpy()
    strata = pd.DataFrame({"__label": label, "sex": frame["sex"], "age_group": frame["age_group"]})
    hold = frame.loc[split_rows(strata, holdout_size=0.5, seed=spec["seed"])]
    assert len(hold) == entry["summary"]["holdout_rows"]
    classes = list(model.classes_)
    score = model.predict_proba(hold[list(model.feature_names_in_)])[:, classes.index(1)]
    selected = score >= best["threshold"]
    rates = {g: float(selected[(hold["sex"] == g).to_numpy()].mean()) for g in ("female", "male")}
    for group, rate in rates.items():
        assert best["groups"][group]["selection_rate"] == pytest.approx(rate, abs=1e-12)
    assert best["min_impact_ratio"] == pytest.approx(
        min(rates.values()) / max(rates.values()), abs=1e-12
    )
    assert "sex" not in set(model.feature_names_in_) or np.all(  # never a decision input
        model.predict_proba(hold.assign(sex="male")[list(model.feature_names_in_)])[:, 1]
        == model.predict_proba(hold.assign(sex="female")[list(model.feature_names_in_)])[:, 1]
    )

    _submit_with_a_train_file(base, folder, spec, tmp_path)


def _submit_with_a_train_file(
    base: str, folder: Path, spec: dict[str, Any], tmp_path: Path
) -> None:
    """The same services: ``train`` is uploaded, named by id, and read by the worker."""
    from audit import run_audit

    probe = spec["probes"][0]
    del probe["holdout_size"]
    probe["train"] = "train.csv"
    spec_path = folder / "service-train.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    submitted = _submit(base, spec_path, tmp_path / "out-train", tmp_path)
    assert submitted.returncode in (0, 1), submitted.stderr
    assert "uploading probes[0].train train.csv" in submitted.stderr
    results = json.loads((tmp_path / "out-train" / "results.json").read_text())
    entry = next(p for p in results["probes"] if p["kind"] == "lda-search")
    train_rows = len(pd.read_csv(folder / "train.csv"))
    assert entry["summary"]["training"] == "file"
    assert entry["summary"]["training_rows"] == train_rows
    with session_scope() as session:
        row = repo.load_audit(session=session, audit_id=results["audit"]["id"])
        assert row is not None
        stored = row.spec["probes"][0]
    assert "train" not in stored and stored["train_id"]  # an id, never the client's path
    local = run_audit(spec_path, store=False)  # the same search on the local files
    expected = next(p for p in local["probes"] if p["kind"] == "lda-search")
    assert [a["name"] for a in entry["alternatives"]] == [
        a["name"] for a in expected["alternatives"]
    ]
    for a, b in zip([entry["baseline"], *entry["alternatives"]],
                    [expected["baseline"], *expected["alternatives"]], strict=True):  # fmt: skip
        assert a["min_impact_ratio"] == pytest.approx(b["min_impact_ratio"], abs=1e-12)
        assert a["performance"] == pytest.approx(b["performance"], abs=1e-12)
