"""A third-party probe runs everywhere a built-in one does, with nothing in audit/ changed.

The probes live in ``tests/plugins/`` and are installed the way a package installs
them: a ``*.dist-info`` folder whose ``entry_points.txt`` names them under
``biasaudit.probes``, put on ``PYTHONPATH`` of every process started here. Then:

- ``biasaudit run`` (CLI, embedded) audits with ``selection-gap``: findings from its
  own check, exit 1 on a breach, its entry in results.json and in report.html;
- over HTTP with a real worker: ``selection-gap`` on an uploaded dataset above the
  shard threshold (the worker splits it into shards and merges their counts: equal
  to the in-process result), and ``published-rates``, which reads no dataset and
  declares no result models (the permissive ones apply);
- every document validates against ``AuditResults`` and against the JSON Schema the
  server serves at ``/v1/schemas/results``, which knows the plug-in's entry model;
- docs/probes.md shows the same module, word for word.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from audit.engine.results_model import AuditResults
from audit.storage import repo, session_scope
from probes import base as probe_base
from probes.base import register_probe
from tests.factories import spec_for, write_pool
from tests.integration.conftest import ROOT, Stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

BIASAUDIT = str(Path(sys.executable).parent / "biasaudit")
ENTRY_POINTS = """[biasaudit.probes]
published-rates = tests.plugins.published_rates
selection-gap = tests.plugins.selection_gap
"""
PLUGINS = ("selection-gap", "published-rates")


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PYTHONPATH on which the plug-in distribution is installed (dist-info + code)."""
    site = tmp_path_factory.mktemp("plugin-site")
    info = site / "biasaudit_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: biasaudit-test-plugins\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return os.pathsep.join([str(site), str(ROOT)])


@pytest.fixture
def registered() -> Iterator[None]:
    """The plug-ins registered in this process too (to compare and validate), then removed."""
    from tests.plugins.published_rates import PublishedRatesProbe
    from tests.plugins.selection_gap import SelectionGapProbe

    for cls in (PublishedRatesProbe, SelectionGapProbe):  # again after an earlier test
        register_probe(cls.name, kind=cls.kind, needs=cls.needs, tags=cls.tags)(cls)
    try:
        yield
    finally:
        for name in PLUGINS:
            probe_base._REGISTRY.pop(name, None)


def _check_document(doc: dict[str, Any], schema: dict[str, Any] | None = None) -> AuditResults:
    typed = AuditResults.model_validate(doc)
    if schema is not None:
        jsonschema.Draft202012Validator(schema).validate(doc)
    return typed


def _gap_spec(dataset: str | Path) -> dict[str, Any]:
    return spec_for(
        dataset,
        name="plugin-selection-gap",
        probes=[{"kind": "selection-gap", "attributes": ["sex"]}],
        policy={"max_selection_gap": 0.1},
    )


PUBLISHED = {
    "name": "plugin-published-rates",
    "domain": "hiring",
    "probes": [
        {
            "kind": "published-rates",
            "attribute": "sex",
            "groups": {"Female": {"n": 400, "selected": 100}, "Male": {"n": 400, "selected": 180}},
        }
    ],
}


def test_cli_runs_a_plugin_probe_into_findings_and_the_report(
    tmp_path: Path, plugin_path: str, registered: None
) -> None:
    pool = write_pool(tmp_path / "pool.csv", n=1200, seed=3)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_gap_spec(pool)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIASAUDIT_")}
    env |= {"PYTHONPATH": plugin_path, "BIASAUDIT_ARTIFACT_DIR": str(tmp_path / "home")}
    out = tmp_path / "out"
    done = subprocess.run(
        [BIASAUDIT, "run", str(spec), "--out", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # female 0.25 vs male 0.45: a gap of ~0.2
    doc = json.loads((out / "results.json").read_text())
    typed = _check_document(doc)
    (entry,) = typed.probes
    assert type(entry).__name__ == "SelectionGapEntry"  # the plug-in's typed model
    gaps = {g.group: g.selection_gap for g in entry.groups}  # type: ignore[attr-defined]
    assert gaps["male"] == 0.0 and 0.12 < gaps["female"] < 0.3
    findings = {f.group: f for f in typed.findings}
    assert findings["female"].metric == "selection_gap" and findings["female"].status == "fail"
    assert findings["male"].status == "pass" and findings["female"].threshold == 0.1
    html = (out / "report.html").read_text()
    assert "Selection-rate gap" in html and "female" in html

    # the same module as the walkthrough in docs/probes.md
    module = (ROOT / "tests" / "plugins" / "selection_gap.py").read_text()
    assert f"```python\n{module}```" in (ROOT / "docs" / "probes.md").read_text()


def test_api_and_a_sharded_worker_run_plugin_probes(
    local: Stack, tmp_path: Path, plugin_path: str, registered: None
) -> None:
    from audit.engine.run import compute_results

    extra = {"PYTHONPATH": plugin_path}
    _, base, worker = local.worker_and_api("plugin", api_extra=extra, concurrency=2, extra=extra)
    with session_scope() as session:
        token, _ = repo.create_token(session=session, project="plugins", role="submitter")
    pool = write_pool(tmp_path / "applicants.csv", n=5000, seed=11)  # above the shard threshold

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        schema = client.get("/v1/schemas/results")
        assert schema.status_code == 200, schema.text
        served_schema = schema.json()
        assert "SelectionGapEntry" in served_schema["$defs"]
        assert httpx.get(f"{base}/v1/schemas/results").status_code == 401

        upload = client.post(
            "/v1/datasets", files={"file": ("applicants.csv", pool.read_bytes(), "text/csv")}
        )
        assert upload.status_code == 201, upload.text
        spec = _gap_spec(upload.json()["id"])
        docs: dict[str, Any] = {}
        for name, body in (("gap", spec), ("published", PUBLISHED)):
            submitted = client.post("/v1/audits", json=body)
            assert submitted.status_code == 202, submitted.text
            audit_id = submitted.json()["id"]

            def finished(audit_id: str = audit_id) -> dict[str, Any] | None:
                state = client.get(f"/v1/audits/{audit_id}").json()
                return state if state["status"] in ("succeeded", "failed") else None

            state = wait_for(finished, timeout=120, what=f"the {name} audit", step=0.3)
            assert state["status"] == "succeeded", state
            docs[name] = client.get(f"/v1/audits/{audit_id}/results").json()
            report = client.get(f"/v1/audits/{audit_id}/report")
            assert report.status_code == 200
            assert get_title(name) in report.text
            docs[name + "_id"] = audit_id

    # sharded on the worker, merged, equal to the engine in one process on the stored file
    lines = [x for x in worker.log_lines() if x.get("audit_id") == docs["gap_id"]]
    assert any(x["message"].startswith("audit split into") for x in lines), lines
    gap = _check_document(docs["gap"], served_schema)
    stored = Path(local.env["BIASAUDIT_DATA_DIR"]) / "plugins"
    uploaded = stored.glob(f"{spec['dataset']['id']}.*")
    stored_file = next(p for p in uploaded if not p.name.endswith(".columnar.parquet"))
    in_process = compute_results(
        {**spec, "dataset": {**spec["dataset"], "path": stored_file.name, "id": None}},
        audit_id="x",
        base_dir=stored,
    )
    assert docs["gap"]["probes"] == in_process["probes"]
    assert docs["gap"]["findings"] == in_process["findings"]
    assert docs["gap"]["verdict"] == "fail"
    assert {f.status for f in gap.findings if f.group == "female"} == {"fail"}

    # no dataset, no declared models: the permissive entry model, findings all the same
    published = _check_document(docs["published"], served_schema)
    (entry,) = published.probes
    assert type(entry).__name__ == "PublishedRatesEntry"
    assert docs["published"]["dataset"]["rows"] == 0
    by_group = {f.group: f for f in published.findings}
    assert by_group["Female"].status == "fail" and by_group["Female"].value == pytest.approx(0.2)
    assert by_group["Male"].status == "pass"


def get_title(name: str) -> str:
    return {"gap": "Selection-rate gap", "published": "Published selection rates"}[name]
