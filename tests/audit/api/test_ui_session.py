"""Dashboard sign-in: session cookie flags, server-side session (hash only), CSRF, sign-out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.api.app import create_app
from audit.settings import Settings
from audit.storage import db
from audit.storage.models import ApiToken, UiSession
from audit.storage.repo import revoke_token
from audit.storage.ui_sessions import create_ui_session
from tests.audit.api.ui_helpers import csrf_of, sign_in

pytestmark = pytest.mark.postgres


def _session_rows(url: str) -> list[str]:
    with db.session_scope(url) as session:
        return list(session.scalars(select(UiSession.id_hash)))


def test_sign_in_sets_a_strict_httponly_cookie_and_stores_only_its_hash(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    first = client.get("/ui/", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/login?next=/ui/"
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"csrf_token": csrf_of(form.text), "token": make_token("reviewer"), "next": "/ui/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("biasaudit_session=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/ui"} <= flags
    assert "secure" not in flags  # plain http here; see the https test below
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert _session_rows(api_settings.db_url) == [hashlib.sha256(session_id.encode()).hexdigest()]
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "reviewer · acme" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_cookie_is_secure_over_https_and_behind_a_tls_proxy(
    api_settings: Settings, make_token: Callable[..., str]
) -> None:
    proxied = api_settings.model_copy(update={"behind_https_proxy": True})
    for settings, base in ((api_settings, "https://testserver"), (proxied, "http://testserver")):
        with TestClient(create_app(settings), base_url=base) as client:
            form = client.get("/ui/login")
            login_cookie = form.headers["set-cookie"]
            assert "secure" in login_cookie.lower()
            # a browser behind the proxy speaks https; send the cookie back as it would
            csrf = csrf_of(form.text)
            answer = client.post(
                "/ui/login",
                data={"csrf_token": csrf, "token": make_token("submitter")},
                headers={"Cookie": f"biasaudit_login_csrf={csrf}"},
                follow_redirects=False,
            )
            assert answer.status_code == 303
            session_cookie = next(
                c
                for c in answer.headers.get_list("set-cookie")
                if c.startswith("biasaudit_session=")
            )
            assert "secure" in session_cookie.lower()


def test_bad_token_and_missing_csrf_are_refused(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    form = client.get("/ui/login")
    wrong = client.post(
        "/ui/login", data={"csrf_token": csrf_of(form.text), "token": "ba_not-a-real-token"}
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    form = client.get("/ui/login")
    no_csrf = client.post("/ui/login", data={"token": make_token("admin")})
    assert no_csrf.status_code == 403
    assert "security token" in no_csrf.text
    assert _session_rows(api_settings.db_url) == []


def test_next_never_leaves_the_dashboard(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    targets = (
        ("//evil.example/x", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("/ui/../v1/audits", "/ui/"),
        ("/ui/audits/x", "/ui/audits/x"),
    )
    for target, expected in targets:
        form = client.get("/ui/login")
        answer = client.post(
            "/ui/login",
            data={"csrf_token": csrf_of(form.text), "token": make_token("admin"), "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == expected
        client.cookies.clear()


def test_signing_in_again_ends_the_previous_session(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    sign_in(client, make_token("reviewer"))
    before = _session_rows(api_settings.db_url)
    # a sign-in form left open in another tab, sent while the browser still has a session
    assert client.get("/ui/login", follow_redirects=False).status_code == 303
    client.cookies.set("biasaudit_login_csrf", "c" * 32, path="/ui")
    answer = client.post(
        "/ui/login",
        data={"csrf_token": "c" * 32, "token": make_token("admin")},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    after = _session_rows(api_settings.db_url)
    assert len(before) == len(after) == 1 and before != after
    assert "admin · acme" in client.get("/ui/").text


def test_sign_out_needs_csrf_and_deletes_the_session(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    csrf = sign_in(client, make_token("reviewer"))
    refused = client.post("/ui/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert len(_session_rows(api_settings.db_url)) == 1
    stolen = dict(client.cookies)
    out = client.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert _session_rows(api_settings.db_url) == []
    client.cookies.update(stolen)  # the old cookie replayed: the session is gone server-side
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_revoked_token_and_expired_session_sign_the_browser_out(
    client: TestClient, make_token: Callable[..., str], api_settings: Settings
) -> None:
    token = make_token("reviewer")
    make_token("admin")
    sign_in(client, token)
    with db.session_scope(api_settings.db_url) as session:
        row = session.scalars(select(ApiToken).where(ApiToken.role == "reviewer")).one()
        assert revoke_token(session=session, project="acme", token_id=row.id)
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    with db.session_scope(api_settings.db_url) as session:
        admin = session.scalars(select(ApiToken).where(ApiToken.role == "admin")).first()
        assert admin is not None
        expired = create_ui_session(
            session=session, token_id=admin.id, lifetime=timedelta(seconds=-1)
        )
    client.cookies.set("biasaudit_session", expired, path="/ui")
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_forms_are_bounded_before_they_are_read(client: TestClient) -> None:
    from audit.ui.security import MAX_FORM_BYTES

    form = client.get("/ui/login")
    csrf = csrf_of(form.text)
    huge = client.post(
        "/ui/login", content=b"token=" + b"a" * (MAX_FORM_BYTES + 1),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert huge.status_code == 413
    as_json = client.post("/ui/login", json={"csrf_token": csrf, "token": "x"})
    assert as_json.status_code == 415
    multipart = client.post("/ui/login", files={"token": ("t", b"x")}, data={"csrf_token": csrf})
    assert multipart.status_code == 415
    many = client.post("/ui/login", data={f"f{i}": "x" for i in range(50)})
    assert many.status_code == 413
    nul = client.post("/ui/login", data={"csrf_token": csrf, "token": "ba_\x00"})
    assert nul.status_code == 422 and "NUL" in nul.text
