"""An audit that runs a model is routed to the gpu queue and run there by the same engine.

A CPU-only worker runs beside the gpu-queue worker: the model audit must be
claimed by the gpu worker (``audit.queue.queue_for``), and its stored results
must equal the engine's in-process results for the same spec.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from audit.engine.run import compute_results
from audit.queue import publish, queue_for
from audit.storage import repo, session_scope
from tests.integration.conftest import Stack, wait_status
from tests.workers.conftest import add_audit

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


def _model_inputs(folder: Path, n: int = 800) -> tuple[Path, Path]:
    rng = np.random.default_rng(5)
    sex = rng.choice(["female", "male"], size=n)
    x1 = rng.normal(size=n) + np.where(sex == "male", 0.4, 0.0)
    x2 = rng.normal(size=n)
    frame = pd.DataFrame(
        {"sex": sex, "x1": x1, "x2": x2, "repaid": (x1 + x2 + rng.normal(size=n) > 0).astype(int)}
    )
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["repaid"])
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "applicants.csv"
    frame.to_csv(data, index=False)
    model_path = folder / "credit.skops"
    sio.dump(model, model_path)
    return data, model_path


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for key in ("id", "started_at", "finished_at"):
        doc["audit"].pop(key)
    return doc


def test_model_audit_runs_on_the_gpu_queue(local: Stack) -> None:
    project_dir = Path(local.env["BIASAUDIT_DATA_DIR"]) / "acme"
    data, model_path = _model_inputs(project_dir)
    spec = {
        "name": "credit-model",
        "domain": "lending",
        "dataset": {"path": str(data), "label": "repaid", "protected": ["sex"]},
        "model": {"kind": "sklearn", "path": str(model_path), "features": ["x1", "x2"]},
        "probes": [{"kind": "demographic"}],
    }
    assert queue_for(spec) == "gpu"
    cpu_only = local.worker("cpu-only", queues="cpu", wait=False)  # side by side
    local.worker("gpu-one", queues="gpu")
    cpu_only.wait_ready()
    audit_id = add_audit(spec)
    publish(audit_id, queue=queue_for(spec))
    row = wait_status(audit_id, {"succeeded", "failed"}, timeout=60)
    assert row.status == "succeeded", row.error
    assert row.worker.startswith("gpu-one@test/")
    with session_scope() as session:
        stored = repo.get_results(session=session, project="acme", audit_id=audit_id)
    assert stored is not None and stored["model"]["kind"] == "sklearn"
    assert len(stored["model"]["sha256"]) == 64
    # the worker runs paths relative to the project folder: no server folder in results
    relative: dict[str, Any] = json.loads(json.dumps(spec))
    relative["dataset"]["path"], relative["model"]["path"] = data.name, model_path.name
    expected = compute_results(relative, base_dir=project_dir)
    assert str(project_dir) not in json.dumps(stored)
    assert _strip(stored) == _strip(expected)
