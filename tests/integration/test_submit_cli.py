"""``biasaudit submit`` against a real ``serve`` + ``worker`` equals ``biasaudit run``.

The hiring example with a scikit-learn model saved with skops: ``biasaudit run``
(embedded, in a child process) and ``biasaudit submit`` (uploads the CSV and the
.skops file, submits, follows, downloads; PostgreSQL, Redis, a Celery worker)
must produce the same results.json and the same exit code. Only the fields that
must differ are left out of the comparison (:data:`DIFFERENT`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from audit.examples.hiring import generate
from audit.storage import repo, session_scope
from tests.golden_plugin import normalised
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

BIASAUDIT = str(Path(sys.executable).with_name("biasaudit"))
FEATURES = ["years_experience", "skills_score", "employment_gap"]
# What differs between the two runs, and why:
# (ids, times and spec_sha256 differ on every run: the golden normal form hides them)
DIFFERENT = (
    ("manifest", "spec"),  # the service ran dataset.id / model.id instead of the paths
    ("dataset", "path"),  # the stored upload's name instead of the local file's
)


def _hiring_with_model(folder: Path) -> Path:
    """The hiring example (3,000 applicants) audited through a fitted pipeline in .skops."""
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    spec_path = generate(out_dir=folder, n=3000, seed=3)
    frame = pd.read_csv(folder / "applicants.csv")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        frame[FEATURES], frame["advanced"]
    )
    (folder / "models").mkdir()
    sio.dump(model, folder / "models" / "screener.skops")
    spec = yaml.safe_load(spec_path.read_text())
    spec["name"] = "hiring-model"
    for column in ("prediction", "score"):
        spec["dataset"].pop(column)
    spec["model"] = {"kind": "sklearn", "path": "models/screener.skops", "features": FEATURES}
    out = folder / "model-spec.yaml"
    out.write_text(yaml.safe_dump(spec))
    return out


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIASAUDIT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


class _Background:
    """A ``biasaudit`` command running beside the test (its output to files): the embedded
    ``run`` computes while the stack starts and the submitted audit runs."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.out, self.err = cwd / f"{args[0]}.stdout", cwd / f"{args[0]}.stderr"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [BIASAUDIT, *args], env=env, cwd=cwd, stdout=out, stderr=err
            )
        self.args = [BIASAUDIT, *args]

    def result(self) -> subprocess.CompletedProcess[str]:
        code = self.proc.wait(timeout=300)
        return subprocess.CompletedProcess(
            self.args, code, self.out.read_text(), self.err.read_text()
        )


def _embedded_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIASAUDIT_")}
    env["BIASAUDIT_ARTIFACT_DIR"] = str(home)
    return env


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    doc = normalised(doc)
    for section, key in DIFFERENT:
        doc.get(section, {}).pop(key, None)
    return doc


def _token(project: str = "acme") -> str:
    with session_scope() as session:
        token, _ = repo.create_token(session=session, project=project, role="submitter")
    return token


def _run_and_submit(
    local: Stack, spec: Path, tmp_path: Path, worker: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``biasaudit run`` (embedded, to ``tmp_path/run``) beside a worker and an API being
    started, then ``biasaudit submit`` of the same spec (to ``tmp_path/submit``): both
    completed processes, with the same exit code, a pass or a fail."""
    running = _Background(
        "run", str(spec), "--out", str(tmp_path / "run"), "--no-store",
        env=_embedded_env(tmp_path / "home"), cwd=tmp_path,
    )  # fmt: skip
    _, base, _ = local.worker_and_api(worker, queues="gpu,cpu")
    env = {**_embedded_env(tmp_path / "client"), "BIASAUDIT_TOKEN": _token()}
    submitted = _cli(
        "submit", str(spec), "--api", base, "--out", str(tmp_path / "submit"), env=env, cwd=tmp_path
    )
    ran = running.result()
    assert ran.returncode in (0, 1), ran.stderr
    assert submitted.returncode == ran.returncode, submitted.stderr
    return ran, submitted


def test_submit_returns_the_results_of_run(local: Stack, tmp_path: Path) -> None:
    spec = _hiring_with_model(tmp_path / "hiring")
    ran, submitted = _run_and_submit(local, spec, tmp_path, "submit")
    assert "uploading dataset applicants.csv" in submitted.stderr
    assert "uploading model screener.skops" in submitted.stderr
    assert "succeeded 100%" in submitted.stderr
    assert ran.stdout.splitlines()[1:3] == submitted.stdout.splitlines()[1:3]  # summary

    local_doc = json.loads((tmp_path / "run" / "results.json").read_text())
    served = json.loads((tmp_path / "submit" / "results.json").read_text())
    assert served["model"]["kind"] == "sklearn"
    assert served["model"]["sha256"] == local_doc["model"]["sha256"]  # the same model file
    assert served["dataset"]["sha256"] == local_doc["dataset"]["sha256"]
    assert _comparable(served) == _comparable(local_doc)
    assert (tmp_path / "submit" / "report.html").read_text().lstrip().startswith("<!")


def test_submit_refusals_exit_2_with_the_servers_message(local: Stack, tmp_path: Path) -> None:
    _, base = local.api()
    spec_path = _hiring_with_model(tmp_path / "hiring")
    spec = yaml.safe_load(spec_path.read_text())
    spec["dataset"]["protected"] = ["race_ethnicity", "ethnicity"]
    bad = tmp_path / "hiring" / "bad-column.yaml"
    bad.write_text(yaml.safe_dump(spec))
    env = {**_embedded_env(tmp_path / "client"), "BIASAUDIT_TOKEN": _token()}

    wrong = {**env, "BIASAUDIT_TOKEN": "ba_" + "x" * 40}
    no_token = {k: v for k, v in env.items() if k != "BIASAUDIT_TOKEN"}
    # four independent clients, side by side (each spends seconds importing)
    commands = {
        "refused": (["submit", str(bad), "--api", base], env),
        "denied": (["submit", str(spec_path), "--api", base], wrong),
        "missing": (["submit", str(spec_path), "--api", base], no_token),
        "queued": (["submit", str(spec_path), "--no-wait"], {**env, "BIASAUDIT_API": base}),
    }
    started = {}
    for name, (args, with_env) in commands.items():
        (tmp_path / name).mkdir()
        started[name] = _Background(*args, env=with_env, cwd=tmp_path / name)
    refused, denied, missing, queued = (started[name].result() for name in commands)

    assert refused.returncode == 2
    assert "POST /v1/audits: 422" in refused.stderr
    assert "ethnicity" in refused.stderr and "dataset.protected[1]" in refused.stderr
    assert denied.returncode == 2 and ": 401 " in denied.stderr
    assert missing.returncode == 2 and "BIASAUDIT_TOKEN" in missing.stderr
    assert queued.returncode == 0, queued.stderr
    audit_id = queued.stdout.strip()
    with session_scope() as session:
        row = repo.get_audit(session=session, project="acme", audit_id=audit_id)
        assert row is not None and row.status == "queued"  # no worker in this test
        assert "id" in row.spec["model"] and "path" not in row.spec["model"]


def test_submit_of_a_hugging_face_folder_returns_the_results_of_run(
    local: Stack, tmp_path: Path
) -> None:
    """The folder is sent as a .tar.gz, unpacked and checked by the API, loaded by the
    worker through transformers: same fingerprint, same scores, same document."""
    from tests.probes.conftest import build_bert

    folder = tmp_path / "screening"
    build_bert(
        folder / "screener",
        "text-classification",
        num_labels=2,
        id2label={0: "reject", 1: "accept"},
        label2id={"reject": 0, "accept": 1},
    )
    spec = {
        "name": "screener-templates",
        "domain": "hiring",
        "model": {
            "kind": "huggingface",
            "path": "screener",
            "task": "text-classification",
            "positive_label": "accept",
            "device": "cpu",
        },
        "probes": [
            {"kind": "counterfactual-text", "templates": "hiring", "swap": "names", "max_texts": 20}
        ],
    }
    spec_path = folder / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    _, submitted = _run_and_submit(local, spec_path, tmp_path, "submit-hf")
    assert "uploading model screener" in submitted.stderr
    local_doc = json.loads((tmp_path / "run" / "results.json").read_text())
    served = json.loads((tmp_path / "submit" / "results.json").read_text())
    assert served["model"]["sha256"] == local_doc["model"]["sha256"]
    assert _comparable(served) == _comparable(local_doc)
