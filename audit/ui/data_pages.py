"""Dashboard routes of the data page: the stored datasets and models, and their erasure.

``GET /ui/data`` lists them (``?view=deleted``: the erased ones);
``GET /ui/data/{datasets|models}/{id}/delete`` is the confirmation step (submitters and
admins); its ``POST`` (CSRF token, the id typed again) erases the item through the
API's own code (:mod:`audit.ui.data_views`) and comes back to the list with a notice.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from audit.api.deps import SessionDep, SettingsDep
from audit.ui.data_views import confirm_page, data_page, delete_from_form
from audit.ui.render import render, see_other
from audit.ui.security import ViewerDep, checked_form

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/data")
def data(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    context = data_page(session, viewer, request.query_params)
    return render(request, "data.html.j2", {"viewer": viewer, **context})


@router.get("/data/{segment}/{item_id}/delete")
def confirm_delete(
    segment: str, item_id: str, request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    context = confirm_page(session, viewer, segment, item_id)
    return render(request, "data_delete.html.j2", {"viewer": viewer, **context})


@router.post("/data/{segment}/{item_id}/delete")
async def delete_item(
    segment: str, item_id: str, request: Request, viewer: ViewerDep, session: SessionDep,
    settings: SettingsDep,
) -> Response:  # fmt: skip
    fields = await checked_form(request, viewer)
    refused = await run_in_threadpool(
        delete_from_form, session, viewer, settings, segment, item_id, fields
    )
    if refused is None:
        return see_other("/ui/data?" + urlencode({"erased": f"{segment}:{item_id}"}))
    status = refused.pop("status")
    return render(request, "data_delete.html.j2", {"viewer": viewer, **refused}, status=status)
