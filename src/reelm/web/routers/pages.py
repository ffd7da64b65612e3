"""Server-rendered pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from reelm.residency import service as residency
from reelm.web.deps import OptionalUserDep, PlatformDep

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, platform: PlatformDep, user: OptionalUserDep) -> HTMLResponse:
    overview = residency.regions_overview(platform)
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "home.html", {"user": user, "overview": overview}
    )
    return page
