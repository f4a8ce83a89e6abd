"""confine_spec: the one path rule of the API and the workers (no database needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from audit.engine.confine import Roots, confine_spec, is_dataset_storage
from audit.errors import AuditInputError

UPLOAD = "3f1d2c4b-1a2b-4c3d-8e9f-0123456789ab.csv"


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    project = tmp_path / "data" / "acme"
    (project / "models").mkdir(parents=True)
    (project / "models" / "m.skops").write_bytes(b"x")
    (project / "lexicon.json").write_text("{}")
    (project / UPLOAD).write_text("a,b\n1,2\n")
    (project / "sub").mkdir()
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    os.symlink(tmp_path / "secret.csv", project / "link.csv")
    os.symlink(project, project / "models" / "up")
    registered = tmp_path / "registered" / "acme"
    registered.mkdir(parents=True)
    (registered / "credit.joblib").write_bytes(b"x")
    return Roots(project=project, registered=registered)


def _refused(spec: dict[str, Any], roots: Roots) -> AuditInputError:
    with pytest.raises(AuditInputError) as err:
        confine_spec(spec, roots=roots)
    return err.value


@pytest.mark.parametrize(
    "value",
    [
        "../../secret.csv",
        "/etc/passwd",
        "/proc/self/environ",
        "link.csv",  # a symlink out of the folder
        "sub/../../../secret.csv",
    ],
)
def test_paths_out_of_the_project_folder_are_refused_without_naming_it(
    roots: Roots, value: str
) -> None:
    err = _refused({"dataset": {"path": value}}, roots)
    assert err.field == "dataset.path"
    assert "outside the project's data folder" in str(err)
    assert str(roots.project) not in str(err) and str(roots.project.parent) not in str(err)


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (".", "is a folder"),
        ("sub", "is a folder"),
        ("~/secret.csv", "file not found"),  # no home expansion: a name inside the folder
        ("file:///etc/passwd", "file not found"),
        ("%2e%2e/%2e%2e/secret.csv", "file not found"),  # no URL decoding either
        ("a\x00b.csv", "not a usable file path"),
        ("x" * 5000, "not a usable file path"),
    ],
)
def test_unusable_dataset_paths(roots: Roots, value: str, phrase: str) -> None:
    err = _refused({"dataset": {"path": value}}, roots)
    assert err.field == "dataset.path" and phrase in str(err)
    assert len(str(err)) < 600  # a long value is shortened in the message


def test_accepted_paths_are_stored_relative(roots: Roots) -> None:
    spec: dict[str, Any] = {
        "dataset": {"path": f"sub/../{UPLOAD}"},
        "model": {"kind": "sklearn", "path": "./models/m.skops"},
        "probes": [{"kind": "counterfactual-text", "lexicon_path": "lexicon.json"}],
    }
    confined = confine_spec(spec, roots=roots)
    assert confined.stored["dataset"]["path"] == UPLOAD
    assert confined.stored["model"]["path"] == "models/m.skops"
    assert confined.stored["probes"][0]["lexicon_path"] == "lexicon.json"
    assert confined.resolved["model"]["path"] == "models/m.skops"  # the engine's base: project
    assert confined.resolved["probes"][0]["lexicon_path"] == str(roots.project / "lexicon.json")
    assert spec["dataset"]["path"] == f"sub/../{UPLOAD}"  # the input is not changed


@pytest.mark.parametrize("trusted", [True, "true", 1, "yes", "maybe"])
def test_trusted_is_refused(roots: Roots, trusted: object) -> None:
    err = _refused(
        {"model": {"kind": "sklearn", "path": "models/m.skops", "trusted": trusted}}, roots
    )
    assert err.field == "model.trusted"
    assert "registered:NAME" in str(err)


def test_trusted_false_is_fine(roots: Roots) -> None:
    confine_spec(
        {"model": {"kind": "sklearn", "path": "models/m.skops", "trusted": False}}, roots=roots
    )


@pytest.mark.parametrize("value", [UPLOAD, ".", "models/up", "models/up/" + UPLOAD, "sub/.."])
def test_a_model_is_never_loaded_from_the_datasets_storage(roots: Roots, value: str) -> None:
    err = _refused({"model": {"kind": "sklearn", "path": value}}, roots)
    assert err.field == "model.path" and "datasets storage" in str(err)
    assert is_dataset_storage((roots.project / value).resolve(), roots.project)


def test_registered_models_are_trusted_and_confined(roots: Roots) -> None:
    confined = confine_spec(
        {"model": {"kind": "sklearn", "path": "registered:credit.joblib"}}, roots=roots
    )
    assert confined.stored["model"] == {"kind": "sklearn", "path": "registered:credit.joblib"}
    assert roots.registered is not None
    assert confined.resolved["model"]["path"] == str(roots.registered / "credit.joblib")
    assert confined.resolved["model"]["trusted"] is True
    for name, phrase in [("../../x", "outside"), ("nope.joblib", "no registered model")]:
        err = _refused({"model": {"path": f"registered:{name}"}}, roots)
        assert err.field == "model.path" and phrase in str(err)
    none = Roots(project=roots.project)
    err = _refused({"model": {"path": "registered:credit.joblib"}}, none)
    assert "BIASAUDIT_TRUSTED_MODEL_DIR" in str(err)


def test_field_prefix_for_schedules(roots: Roots) -> None:
    with pytest.raises(AuditInputError) as err:
        confine_spec({"model": {"path": "m", "trusted": True}}, roots=roots, prefix="spec.")
    assert err.value.field == "spec.model.trusted" and str(err.value).startswith("spec.model")


def test_a_probe_file_field_is_confined_like_a_path(roots: Roots) -> None:
    """lda-search's ``train`` (declared in ``file_fields``) follows the ``*_path`` rule."""
    (roots.project / "train.csv").write_text("a,b\n1,2\n")
    probe = {"kind": "lda-search", "attribute": "sex", "train": "sub/../train.csv"}
    confined = confine_spec({"probes": [probe]}, roots=roots)
    assert confined.stored["probes"][0]["train"] == "train.csv"
    assert confined.resolved["probes"][0]["train"] == str(roots.project / "train.csv")
    for value in ("../../secret.csv", "link.csv", "/etc/passwd"):
        err = _refused({"probes": [{**probe, "train": value}]}, roots)
        assert err.field == "probes[0].train" and "outside the project's data folder" in str(err)
