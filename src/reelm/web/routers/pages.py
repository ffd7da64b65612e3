"""Server-rendered pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from reelm.accounts import rights
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


@router.get("/transparency", response_class=HTMLResponse)
def transparency_page(
    request: Request, platform: PlatformDep, user: OptionalUserDep
) -> HTMLResponse:
    """Each category of data, where it lives (region, operator, country) and why."""
    region = user.region if user else platform.policy.default_region
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        "transparency.html",
        {
            "user": user,
            "info": rights.transparency(platform, region),
            "overview": residency.regions_overview(platform),
        },
    )
    return page
