"""POST /v1/audits with a YAML body: same spec as JSON, same limits, YAML's own risks bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml
from fastapi.testclient import TestClient

from audit.api.yaml_body import MAX_NODES, MAX_YAML_BYTES, MAX_YAML_MARKS, expanded_size
from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Audit
from tests.audit.api.helpers import auth, spec_for


@pytest.fixture
def token(make_token: Callable[..., str]) -> str:
    return make_token("submitter")


def _post_yaml(client: TestClient, token: str, text: str, ctype: str = "application/yaml"):  # type: ignore[no-untyped-def]
    headers = {**auth(token), "Content-Type": ctype}
    return client.post("/v1/audits", content=text.encode(), headers=headers)


def _stored_specs(settings: Settings) -> list[dict]:
    with db.session_scope(settings.db_url) as session:
        return [row.spec for row in session.query(Audit).order_by(Audit.created_at)]


def test_a_yaml_spec_is_stored_as_the_same_json_spec(
    client: TestClient, token: str, dataset_id: str, api_settings: Settings
) -> None:
    spec = spec_for(dataset_id)
    for ctype in ("application/yaml", "text/yaml", "application/x-yaml"):
        response = _post_yaml(client, token, yaml.safe_dump(spec), ctype)
        assert response.status_code == 202, response.text
    padded = "# " + "x" * 60_000 + "\n" + yaml.safe_dump(spec)  # just under the limit
    response = _post_yaml(client, token, padded)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert client.post("/v1/audits", json=spec, headers=auth(token)).status_code == 202
    stored = _stored_specs(api_settings)
    assert len(stored) == 5 and all(s == stored[-1] for s in stored)


def test_yaml_bodies_too_costly_to_parse_are_refused_before_parsing(
    client: TestClient, token: str, dataset_id: str, api_settings: Settings
) -> None:
    spec = yaml.safe_dump(spec_for(dataset_id))
    response = _post_yaml(client, token, "# " + "x" * (MAX_YAML_BYTES + 10) + "\n" + spec)
    assert response.status_code == 413, response.text
    assert "send a larger spec as JSON" in response.json()["detail"]
    response = _post_yaml(client, token, spec + "seed: 0 # " + "," * (MAX_YAML_MARKS + 1) + "\n")
    assert response.status_code == 422, response.text
    assert f"more than {MAX_YAML_MARKS} YAML items" in response.json()["detail"]
    assert _stored_specs(api_settings) == []


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "expands",
        ),
        ("a: &a [1, *a]\n", "refers to itself"),
        ("name: x\nwhen: 2026-01-01\n", "cannot store"),
        ("name: x\nseed: .inf\n", "cannot store"),
        ("name: [unclosed\n", "not valid YAML"),
        ("--- {name: a}\n--- {name: b}\n", "not valid YAML"),
        ("[" * 70 + "]" * 70, "nested deeper"),
        ("   \n", "required"),
    ],
)
def test_hostile_or_broken_yaml_is_422_naming_the_body(
    client: TestClient, token: str, api_settings: Settings, text: str, needle: str
) -> None:
    response = _post_yaml(client, token, text)
    assert response.status_code == 422, response.text
    # the parser's own recursion limit, or the 64-level check after it, whichever comes first
    assert response.json()["field"] in ("body", "[0]" * 64)
    assert needle in response.json()["detail"]
    assert _stored_specs(api_settings) == []


def test_yaml_nesting_limit_is_the_json_one(client: TestClient, token: str) -> None:
    response = _post_yaml(client, token, "[" * 70 + "]" * 70)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "[0]" * 64
    assert "nested deeper than 64 levels" in response.json()["detail"]


def test_expanded_size_measures_shared_nodes_once() -> None:
    leaf = list(range(10))
    doc = {"a": [leaf] * 3, "b": leaf}
    assert expanded_size(doc) == 1 + (1 + 3 * 11) + 11
    bomb: list = ["x"]
    for _ in range(30):
        bomb = [bomb, bomb]
    assert expanded_size(bomb) == MAX_NODES + 1  # 2**30 values, measured in 31 steps


def test_yaml_spec_naming_a_missing_column_is_422_naming_it(
    client: TestClient, token: str, dataset_id: str
) -> None:
    spec = spec_for(dataset_id)
    spec["dataset"]["protected"] = ["sex", "ethnicity"]
    response = _post_yaml(client, token, yaml.safe_dump(spec))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "dataset.protected[1]"
    assert "ethnicity" in body["detail"]


def test_other_media_types_are_415_naming_both_accepted(client: TestClient, token: str) -> None:
    response = _post_yaml(client, token, "name: x\n", "text/plain")
    assert response.status_code == 415
    assert "application/yaml" in response.json()["detail"]
