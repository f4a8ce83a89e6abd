"""Rendering dashboard pages: one Jinja2 environment (autoescape on), error pages.

Templates get already formatted strings (built in :mod:`audit.ui.views`);
the only markup they output unescaped is the SVG the chart functions build
(which escape every label themselves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from audit.ui.security import LoginRequired, UiError

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
NO_STORE = {"Cache-Control": "no-store"}

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATE_DIR)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """A page from ``template`` with ``context`` (plus the request path), never cached."""
    html = _env.get_template(template).render(path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path inside /ui/ only (no open redirect)."""
    if not value or not value.startswith("/ui/") or "\\" in value or "/.." in value:
        return "/ui/"
    return value


def see_other(location: str) -> RedirectResponse:
    """A 303 redirect (after a POST, or to the sign-in page)."""
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


async def ui_error_page(request: Request, exc: Exception) -> Response:
    """An error page with the error's status and message."""
    assert isinstance(exc, UiError)
    return render(
        request, "error.html.j2", {"status": exc.status, "message": exc.message}, status=exc.status
    )


async def login_redirect(request: Request, exc: Exception) -> Response:
    """Send a browser without a live session to the sign-in page."""
    assert isinstance(exc, LoginRequired)
    return see_other("/ui/login?next=" + quote(safe_next(exc.next_path), safe="/"))
