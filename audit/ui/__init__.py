"""The dashboard at ``/ui/``: server-rendered pages over the same tokens, roles and tenancy
as the JSON API (sign-in with a token, then a session cookie).

:func:`install_ui` mounts the routes and the static files (CSS and one small
script, shipped in the package: no CDN) on the API application.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from audit.ui.render import STATIC_DIR, login_redirect, ui_error_page
from audit.ui.security import LoginRequired, UiError


def install_ui(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and error pages to ``app``."""
    from audit.ui import data_pages, pages, routes

    app.include_router(routes.router)
    app.include_router(pages.router)
    app.include_router(data_pages.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_exception_handler(UiError, ui_error_page)
    app.add_exception_handler(LoginRequired, login_redirect)
