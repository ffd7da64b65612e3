"""/audit/{region}: a region's audit log, public and read-only, for auditors and witnesses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from reelm.audit.log import MAX_PAGE, region_log
from reelm.audit.schemas import ConsistencyProofRead, EntriesPage, InclusionProofRead
from reelm.web.deps import PlatformDep, SettingsDep

router = APIRouter(prefix="/audit/{region}", tags=["audit"])
Size = Annotated[int | None, Query(ge=0, description="Tree size (default: the current size).")]


@router.get("/checkpoint", response_class=PlainTextResponse)
def checkpoint(region: str, platform: PlatformDep, settings: SettingsDep) -> str:
    """The latest signed checkpoint (C2SP signed note); signed now if the tree has grown."""
    return region_log(settings, platform.region(region)).checkpoint()


@router.get("/key", response_class=PlainTextResponse)
def key(region: str, platform: PlatformDep, settings: SettingsDep) -> str:
    """The log's public key as a signed-note verifier key; auditors should get it out of band."""
    return region_log(settings, platform.region(region)).vkey() + "\n"


@router.get("/entries")
def entries(
    region: str,
    platform: PlatformDep,
    settings: SettingsDep,
    start: Annotated[int, Query(ge=0)] = 0,
    end: Annotated[
        int | None, Query(ge=0, description=f"Exclusive; at most {MAX_PAGE} a page.")
    ] = None,
) -> EntriesPage:
    """Entries [start, end): each entry's exact bytes (base64), its leaf hash and the parsed JSON."""
    return region_log(settings, platform.region(region)).entries_page(start, end)


@router.get("/proof/inclusion")
def inclusion_proof(
    region: str,
    platform: PlatformDep,
    settings: SettingsDep,
    index: Annotated[int, Query(ge=0)],
    size: Size = None,
) -> InclusionProofRead:
    return region_log(settings, platform.region(region)).inclusion_proof(index, size)


@router.get("/proof/consistency")
def consistency_proof(
    region: str,
    platform: PlatformDep,
    settings: SettingsDep,
    first: Annotated[int, Query(ge=1)],
    second: Size = None,
) -> ConsistencyProofRead:
    return region_log(settings, platform.region(region)).consistency_proof(first, second)
