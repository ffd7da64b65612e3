"""/staff/api/v1: the staff console API. Every read of protected data is Cedar-gated and logged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from reelm.staff import service
from reelm.staff.schemas import StaffLogin, StaffRead, StaffSignedIn, TicketOpen, TicketRead
from reelm.staff.service import StaffPrincipal
from reelm.web.deps import PlatformDep, SettingsDep, session_token

router = APIRouter(prefix="/staff/api/v1", tags=["staff"])


def get_staff(request: Request, platform: PlatformDep) -> StaffPrincipal:
    return service.access_staff(platform, session_token(request) or "")


StaffDep = Annotated[StaffPrincipal, Depends(get_staff)]


@router.post("/sessions", status_code=status.HTTP_201_CREATED)
def staff_login(body: StaffLogin, platform: PlatformDep, settings: SettingsDep) -> StaffSignedIn:
    return service.check_staff_login(
        platform, settings, handle=body.handle, password=body.password, totp=body.totp
    )


@router.post("/tickets", status_code=status.HTTP_201_CREATED)
def open_ticket(body: TicketOpen, staff: StaffDep, platform: PlatformDep) -> TicketRead:
    return service.do_open_ticket(platform, staff, region=body.region, purpose=body.purpose)


@router.post("/tickets/{ticket_id}/close")
def close_ticket(ticket_id: str, staff: StaffDep, platform: PlatformDep) -> TicketRead:
    return service.do_close_ticket(platform, staff, ticket_id=ticket_id)


@router.get("/users/{handle}/{category}")
def read_user_data(
    handle: str,
    category: str,
    staff: StaffDep,
    platform: PlatformDep,
    settings: SettingsDep,
    purpose: Annotated[str, Query(pattern=r"^[a-z][a-z_-]{1,39}$")],
    ticket: Annotated[str, Query(max_length=40)] = "",
) -> StaffRead:
    """Read one category of a user's protected data (authorised by Cedar, logged either way)."""
    return service.access_user_data(
        platform,
        settings,
        staff,
        handle=handle,
        category=category,
        purpose=purpose,
        ticket_id=ticket,
    )
