"""The HTTP API (contract §5): ``create_app()`` builds the FastAPI application.

Run it with ``biasaudit serve`` (uvicorn), or ``uvicorn --factory
audit.api.app:create_app``. The app is configured from :class:`Settings`
(``BIASAUDIT_*``); it imports neither torch, transformers nor ``workers``:
audits are enqueued by task name (:mod:`audit.queue`) after the commit.

Example
-------
>>> from fastapi.testclient import TestClient  # doctest: +SKIP
>>> client = TestClient(create_app())  # doctest: +SKIP
>>> client.get("/healthz").json()  # doctest: +SKIP
{'status': 'ok'}
"""

from __future__ import annotations

import gc
import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from audit.api.errors import install_error_handlers
from audit.api.group_commit import SubmitQueue
from audit.api.metrics import Metrics
from audit.api.middleware import RequestContextMiddleware
from audit.api.openapi import build_openapi
from audit.api.routes import (
    artifacts,
    audits,
    datasets,
    events,
    health,
    history,
    models,
    reports,
    reviews,
    schedules,
    schemas,
)
from audit.api.uploads import remove_stale_uploads
from audit.settings import Settings, get_settings
from audit.ui import install_ui

# Young-generation threshold of a server process (CPython's default is 700, 10, 10).
GC_THRESHOLDS = (10_000, 10, 10)
SHUTDOWN_DEADLINE_S = 30.0  # longest wait for submission batches in flight at shutdown


def _version() -> str:
    try:
        return importlib.metadata.version("biasaudit")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


DESCRIPTION = """Bias and fairness audits as a service.

Every route except `/healthz`, `/readyz` and `/metrics` needs
`Authorization: Bearer <token>` (create one with `biasaudit keys create`).
Errors are JSON `{"detail": "...", "field": "..."}` (spec and query errors add
`errors`, every invalid field); every response carries `X-Request-ID`.
"""


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Keep the garbage collector off the latency tail of a server process.

    ``gc.freeze()`` moves everything alive after startup (modules, the app,
    pydantic and SQLAlchemy structures: hundreds of thousands of objects) out
    of the collector's reach, so a full collection no longer walks them; the
    larger young-generation threshold makes collections rarer. Measured with
    ``benchmarks/bench_api.py`` (50 clients): p99 145-160 ms without, 35-50 ms
    with (docs/performance.md). Only ``biasaudit serve`` does this; it changes
    process-wide state.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


def create_server_app() -> FastAPI:
    """:func:`create_app` for a server process (``biasaudit serve``): tunes the GC at startup."""
    app = create_app()
    app.state.tune_gc = True
    return app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application for ``settings`` (default: ``get_settings()``)."""
    settings = settings or get_settings()
    metrics = Metrics(settings)
    submit_queue = SubmitQueue(settings, observe=metrics.observe_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "tune_gc", False):
            tune_gc()
            await anyio.to_thread.run_sync(remove_stale_uploads, settings)
        if app.state.submit_queue.closed:  # the app is started again (tests)
            app.state.submit_queue = SubmitQueue(settings, observe=metrics.observe_batch)
        yield
        # Batches in flight finish (their rows are committed, their answers sent);
        # a batch stuck longer than the deadline is abandoned, not waited for forever.
        with anyio.move_on_after(SHUTDOWN_DEADLINE_S):
            await anyio.to_thread.run_sync(app.state.submit_queue.close, abandon_on_cancel=True)

    app = FastAPI(
        title="biasaudit",
        lifespan=lifespan,
        version=_version(),
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "datasets", "description": "upload and inspect datasets"},
            {"name": "models", "description": "upload models (.skops, Hugging Face folders)"},
            {"name": "audits", "description": "submit audits, follow them, read results"},
            {"name": "reviews", "description": "reviewer sign-off"},
            {"name": "schedules", "description": "recurring compliance audits (admin)"},
            {"name": "events", "description": "the tamper-evident event log (admin, reviewer)"},
            {"name": "history", "description": "compare audits, a model's or schedule's runs"},
            {"name": "schemas", "description": "JSON Schemas of the documents served"},
            {"name": "health", "description": "liveness, readiness, metrics (no auth)"},
        ],
    )
    app.state.settings = settings
    app.state.submit_queue = submit_queue
    app.state.metrics = metrics
    install_error_handlers(app)
    routers = (health, datasets, models, audits, reports, artifacts, reviews, schedules)
    for module in (*routers, events, history, schemas):
        app.include_router(module.router)
    install_ui(app)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]

    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
