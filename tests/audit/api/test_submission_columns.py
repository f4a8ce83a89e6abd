"""At submission, every column the audit reads must be in the uploaded dataset (422 naming it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.audit.api.helpers import auth, spec_for


@pytest.mark.parametrize(
    ("overrides", "field", "column"),
    [
        (
            {"model": {"kind": "sklearn", "path": "m.skops", "features": ["race", "tenure"]}},
            "model.features[1]",
            "tenure",
        ),
        (
            {"probes": [{"kind": "counterfactual-text", "text_column": "resume"}]},
            "probes[0].text_column",
            "resume",
        ),
    ],
)
def test_a_column_the_dataset_lacks_is_422_naming_field_and_column(
    client: TestClient,
    make_token: Callable[..., str],
    dataset_id: str,
    overrides: dict[str, Any],
    field: str,
    column: str,
) -> None:
    spec = spec_for(dataset_id, **overrides)
    response = client.post("/v1/audits", json=spec, headers=auth(make_token("submitter")))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field
    assert repr(column) in body["detail"] and "sex, race, qualified, advanced" in body["detail"]
