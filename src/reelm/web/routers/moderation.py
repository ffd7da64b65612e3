"""/api/v1/reports (users report content) and /staff/api/v1/moderation (the region queues)."""

from __future__ import annotations

from fastapi import APIRouter, status

from reelm.moderation import service
from reelm.moderation.schemas import ReportCreate, ReportRead
from reelm.web.deps import CurrentUserDep, PlatformDep, SettingsDep

router = APIRouter(tags=["moderation"])


@router.post("/api/v1/reports", status_code=status.HTTP_201_CREATED)
def report(
    body: ReportCreate, user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep
) -> ReportRead:
    """Report a video, a comment or an account; reporting the same thing again counts once."""
    return service.do_report(platform, settings, user, body)
