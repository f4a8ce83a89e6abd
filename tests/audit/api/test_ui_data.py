"""The dashboard's data page: stored datasets and models, their usage, and erasure
through the API's own deletion code (roles, CSRF, the typed confirmation, 409, tenancy)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.settings import Settings
from audit.storage import db
from audit.storage.models import Dataset, ModelArtifact
from tests.audit.api.helpers import auth, make_csv, spec_for, upload
from tests.audit.api.ui_helpers import sign_in

SHA = "ab" * 32


def _model(settings: Settings, project: str = "acme") -> str:
    """A model row (no bytes: deleting what is already gone is not an error)."""
    with db.session_scope(settings.db_url) as session:
        row = ModelArtifact(
            project=project, kind="sklearn", sha256=SHA, path="/nonexistent/m.skops",
            filename="m.skops", size_bytes=2048, files=1,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def _deleted(settings: Settings, dataset_id: str) -> tuple[bool, str | None]:
    with db.session_scope(settings.db_url) as session:
        row = session.scalars(select(Dataset).where(Dataset.id == dataset_id)).one()
        return row.deleted_at is not None, row.deleted_by


def test_lists_datasets_and_models_newest_first_with_usage(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    submitter = make_token("submitter")
    newer = upload(client, submitter, make_csv(40), name="small.csv").json()
    assert client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(submitter)).is_success
    model_id = _model(api_settings)
    sign_in(client, make_token("reviewer"))
    page = client.get("/ui/data")
    assert page.status_code == 200
    html = page.text
    assert 'href="/ui/data" aria-current="page"' in html  # the nav link
    assert html.index(f'id="item-{newer["id"]}"') < html.index(f'id="item-{dataset_id}"')
    assert f'title="{newer["sha256"]}"' in html and newer["sha256"][:12] in html
    assert "40 rows × " in html and f'id="item-{model_id}"' in html
    assert f'href="/ui/?model={SHA}"' not in html  # the model is used by no audit
    used = html[html.index(f'id="item-{dataset_id}"') :].split("</tr>")[0]
    assert '<td class="num">1</td>' in used and "UTC" in used
    assert "/delete" not in html  # a reviewer gets no Delete link
    assert client.get("/ui/data?view=nope").status_code == 422
    assert client.get("/ui/data?datasets_page=0").status_code == 422


def test_reviewer_may_not_delete(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    csrf = sign_in(client, make_token("reviewer"))
    url = f"/ui/data/datasets/{dataset_id}/delete"
    assert client.get(url).status_code == 403
    refused = client.post(url, data={"csrf_token": csrf, "confirm": dataset_id})
    assert refused.status_code == 403 and "may not delete" in refused.text
    assert _deleted(api_settings, dataset_id) == (False, None)


def test_submitter_deletes_after_confirming(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    csrf = sign_in(client, make_token("submitter"))
    listing = client.get("/ui/data").text
    url = f"/ui/data/datasets/{dataset_id}/delete"
    assert f'href="{url}"' in listing
    confirm = client.get(url)
    assert confirm.status_code == 200 and 'label for="confirm"' in confirm.text
    no_csrf = client.post(url, data={"confirm": dataset_id})
    assert no_csrf.status_code == 403
    wrong = client.post(url, data={"csrf_token": csrf, "confirm": "not-it"})
    assert wrong.status_code == 422 and "confirm: type the dataset" in wrong.text
    assert _deleted(api_settings, dataset_id) == (False, None)
    done = client.post(
        url, data={"csrf_token": csrf, "confirm": dataset_id}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/data?erased=datasets%3A{dataset_id}"
    gone, by = _deleted(api_settings, dataset_id)
    assert gone and by is not None and by.startswith("token ")
    flashed = client.get(done.headers["location"]).text
    assert 'id="flash"' in flashed and f"Dataset {dataset_id}" in flashed
    deleted_view = client.get("/ui/data?view=deleted").text
    assert f'id="item-{dataset_id}"' in deleted_view and by in deleted_view
    assert client.get(url).status_code == 410
    again = client.post(url, data={"csrf_token": csrf, "confirm": dataset_id})
    assert again.status_code == 410


def test_in_use_shows_the_audits_and_schedules(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    admin = make_token("admin")
    queued = client.post("/v1/audits", json=spec_for(dataset_id), headers=auth(admin))
    audit_id = queued.json()["id"]
    body = {"name": "weekly", "cron": "0 3 * * 1", "spec": spec_for(dataset_id)}
    schedule_id = client.post("/v1/schedules", json=body, headers=auth(admin)).json()["id"]
    csrf = sign_in(client, admin)
    url = f"/ui/data/datasets/{dataset_id}/delete"
    assert 'id="in-use"' in client.get(url).text
    refused = client.post(url, data={"csrf_token": csrf, "confirm": dataset_id})
    assert refused.status_code == 409
    assert f'href="/ui/audits/{audit_id}"' in refused.text
    assert f'href="/ui/history?schedule={schedule_id}"' in refused.text
    assert 'id="refusal"' in refused.text and "is in use" in refused.text
    assert _deleted(api_settings, dataset_id) == (False, None)


def test_model_deletion_and_another_projects_items(
    client: TestClient, make_token: Callable[..., str], dataset_id: str, api_settings: Settings
) -> None:
    model_id = _model(api_settings)
    csrf = sign_in(client, make_token("admin", project="other"))
    assert dataset_id not in client.get("/ui/data").text
    for segment, item in (("datasets", dataset_id), ("models", model_id)):
        url = f"/ui/data/{segment}/{item}/delete"
        assert client.get(url).status_code == 404
        assert client.post(url, data={"csrf_token": csrf, "confirm": item}).status_code == 404
    assert client.get(f"/ui/data/secrets/{model_id}/delete").status_code == 404
    assert _deleted(api_settings, dataset_id) == (False, None)
    client.cookies.clear()
    csrf = sign_in(client, make_token("admin"))  # the project's own admin deletes it
    url = f"/ui/data/models/{model_id}/delete"
    done = client.post(url, data={"csrf_token": csrf, "confirm": model_id})
    assert done.status_code == 200 and f"Model {model_id} (m.skops) deleted" in done.text
    assert f'id="item-{model_id}"' in client.get("/ui/data?view=deleted").text


def test_pages_of_twenty_per_section(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    reviewer = make_token("reviewer")  # creates the project the rows belong to
    ids = [_model(api_settings) for _ in range(21)]
    sign_in(client, reviewer)
    first = client.get("/ui/data")
    models = first.text[first.text.index('id="models"') :]
    assert models.count('<tr id="item-') == 20 and "Page 1 of 2" in models
    assert 'href="/ui/data?models_page=2"' in models
    second = client.get("/ui/data?models_page=2").text
    assert second.count('<tr id="item-') == 1
    assert sum(f'id="item-{i}"' in first.text + second for i in ids) == 21
