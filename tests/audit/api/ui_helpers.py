"""Helpers for the dashboard tests: sign in through the form, read a page's CSRF token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> str:
    """Sign in with ``token`` through the login form; returns the session's CSRF token."""
    form = client.get("/ui/login")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/ui/login",
        data={"csrf_token": csrf_of(form.text), "token": token, "next": "/ui/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/ui/")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
