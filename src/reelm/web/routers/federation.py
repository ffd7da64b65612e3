"""ActivityPub and WebFinger (server to server), the page of known instances, and the API a
local user follows remote accounts with. Thin: parse, call one federation function, answer."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from reelm.errors import InvalidInput, ReelmError, UserNotFound
from reelm.federation import follows, inbox, service
from reelm.federation.activities import ACTIVITY_JSON, CONTEXT
from reelm.federation.signatures import SignedRequest
from reelm.web.deps import CurrentUserDep, OptionalUserDep, PlatformDep
from reelm.web.routers.pages import render

router = APIRouter(tags=["federation"])


class TooLarge(ReelmError):
    status = 413
    code = "too_large"


def _ap(doc: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(doc), status_code=status_code, media_type=ACTIVITY_JSON,
                    headers=headers)  # fmt: skip


@router.get("/.well-known/webfinger")
def webfinger(platform: PlatformDep, resource: Annotated[str, Query(max_length=500)]) -> Response:
    doc = service.webfinger(service.require(platform), resource)
    return Response(json.dumps(doc), media_type="application/jrd+json")


@router.get("/ap/actors/{user_id}")
def actor(user_id: str, platform: PlatformDep) -> Response:
    fed = service.require(platform)
    try:
        return _ap(service.actor_document(fed, user_id))
    except UserNotFound:
        moved = service.moved_actor_location(platform, user_id)
        if moved is None:
            raise
        doc = {"@context": CONTEXT, "id": fed.urls.actor(user_id), "type": "Person",
               "movedTo": moved}  # fmt: skip
        return _ap(doc, 301, {"Location": moved})


@router.get("/ap/actors/{user_id}/outbox")
def outbox(user_id: str, platform: PlatformDep) -> Response:
    return _ap(service.outbox_document(service.require(platform), user_id))


@router.get("/ap/actors/{user_id}/followers")
def followers(user_id: str, platform: PlatformDep) -> Response:
    return _ap(service.followers_document(service.require(platform), user_id))


@router.get("/ap/videos/{video_id}")
def video(video_id: str, platform: PlatformDep) -> Response:
    return _ap(service.video_document(service.require(platform), video_id))


@router.get("/ap/comments/{comment_id}")
def comment(comment_id: str, platform: PlatformDep) -> Response:
    return _ap(service.comment_document(service.require(platform), comment_id))


async def _signed(request: Request, fed: service.Federation) -> SignedRequest:
    """The request as its signer saw it, its body read up to the limit (413 beyond)."""
    limit = fed.settings.federation_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"An activity may be at most {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"An activity may be at most {limit} bytes.")
    url = fed.urls.base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    return SignedRequest(request.method, url, headers, bytes(body))


async def _inbox(request: Request, platform: Any, user_id: str | None) -> Response:
    from starlette.concurrency import run_in_threadpool

    fed = service.require(platform)
    signed = await _signed(request, fed)
    result = await run_in_threadpool(inbox.check_inbox, fed, signed, user_id=user_id)
    return JSONResponse({"result": result}, status_code=202)


@router.post("/ap/inbox")
async def shared_inbox(request: Request, platform: PlatformDep) -> Response:
    return await _inbox(request, platform, None)


@router.post("/ap/actors/{user_id}/inbox")
async def actor_inbox(user_id: str, request: Request, platform: PlatformDep) -> Response:
    return await _inbox(request, platform, user_id)


@router.get("/federation", response_class=HTMLResponse)
def instances_page(request: Request, platform: PlatformDep, user: OptionalUserDep) -> HTMLResponse:
    """The instances this deployment knows, and which it allows or blocks."""
    fed = service.federation_of(platform)
    return render(request, "federation.html", user, instances=service.list_instances(platform),
                  fed=fed, mode=fed.settings.federation_mode if fed else "off")  # fmt: skip


class RemoteAccount(BaseModel):
    account: str = Field(min_length=3, max_length=300)


@router.post("/api/v1/federation/follows")
def follow_remote(body: RemoteAccount, user: CurrentUserDep, platform: PlatformDep) -> dict[str, str]:
    """Follow a remote account (`user@host`); pending until its server accepts."""
    return {"account": follows.do_follow_remote(platform, user, body.account), "state": "pending"}


@router.delete("/api/v1/federation/follows/{account}")
def unfollow_remote(account: str, user: CurrentUserDep, platform: PlatformDep) -> dict[str, str]:
    follows.do_unfollow_remote(platform, user, account)
    return {"account": account, "state": "none"}


@router.post("/api/v1/federation/follow-requests/{account}/{answer}")
def answer_remote(account: str, answer: str, user: CurrentUserDep, platform: PlatformDep) -> dict[str, str]:
    if answer not in ("approve", "decline"):
        raise InvalidInput("Answer approve or decline.", code="bad_answer")
    follows.do_answer_remote_request(platform, user, account, approve=answer == "approve")
    return {"account": account, "state": "active" if answer == "approve" else "none"}


@router.post("/api/v1/federation/blocks/{account}")
def block_remote(account: str, user: CurrentUserDep, platform: PlatformDep) -> dict[str, str]:
    """Block a remote account (`user@host`): follows both ways end, it notifies you no more."""
    return {"account": follows.do_block_remote(platform, user, account, blocked=True), "state": "blocked"}


@router.delete("/api/v1/federation/blocks/{account}")
def unblock_remote(account: str, user: CurrentUserDep, platform: PlatformDep) -> dict[str, str]:
    return {"account": follows.do_block_remote(platform, user, account, blocked=False), "state": "none"}
