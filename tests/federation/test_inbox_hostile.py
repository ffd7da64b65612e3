"""The inbox refuses hostile input and stores nothing: unsigned (401), badly signed (401),
replayed with an old Date (401), oversized (413), signed by one actor for another (403), from a
blocked or not-allowed instance (403); a second delivery of the same activity counts once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from helpers import make_user, make_video
from reelm.federation import service as fed_service
from reelm.federation.models import InboundActivity, InstanceState, RemoteActor
from reelm.federation.signatures import new_key_pair, sign_request
from reelm.media.models import PublishedVideo


class MalloryServer:
    """A test-only remote server on localhost that publishes one actor and its key (what
    reelm fetches to verify a signature); the test signs requests with that key."""

    def __init__(self) -> None:
        self.public, self.private = new_key_pair()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        port = self.httpd.server_address[1]
        self.origin = f"http://localhost:{port}"
        self.domain = f"localhost:{port}"
        self.actor = f"{self.origin}/users/mallory"
        self.key_id = f"{self.actor}#main-key"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/users/mallory":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps({
                    "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
                    "id": server.actor, "type": "Person", "preferredUsername": "mallory",
                    "inbox": f"{server.actor}/inbox",
                    "publicKey": {"id": server.key_id, "owner": server.actor,
                                  "publicKeyPem": server.public},
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/activity+json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def mallory() -> Iterator[MalloryServer]:
    server = MalloryServer()
    yield server
    server.close()


def post(inbox: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(inbox, content=body, headers={"Content-Type": "application/activity+json", **headers})


def signed(server: MalloryServer, inbox: str, body: bytes, *, private: str | None = None,
           at: datetime | None = None) -> dict[str, str]:  # fmt: skip
    return sign_request("POST", inbox, body, key_id=server.key_id,
                        private_pem=private or server.private, at=at)  # fmt: skip


def stored(platform: Any) -> tuple[int, int]:
    with platform.global_store.session() as g:
        return (
            int(g.scalar(select(func.count()).select_from(RemoteActor)) or 0),
            int(g.scalar(select(func.count()).select_from(InboundActivity)) or 0),
        )


def test_hostile_activities_are_refused_and_store_nothing(reelm_live, mallory) -> None:  # type: ignore[no-untyped-def]
    live = reelm_live
    platform, fed = live.platform, live.fed
    ava_id, ava_region, _ = make_user(platform, live.settings, handle="ava")
    video_id = make_video(platform, owner_id=ava_id, region=ava_region)
    inbox = fed.urls.shared_inbox
    like = {"@context": "https://www.w3.org/ns/activitystreams", "id": f"{mallory.origin}/likes/1",
            "type": "Like", "actor": mallory.actor, "object": fed.urls.video(video_id)}  # fmt: skip
    body = json.dumps(like).encode()

    # not allowed yet (allow-list mode): 403 before any fetch
    r = post(inbox, body, signed(mallory, inbox, body))
    assert r.status_code == 403, r.text
    assert stored(platform) == (0, 0)
    fed_service.do_set_instance(platform, mallory.domain, InstanceState.ALLOWED)

    r = post(inbox, body, {})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unsigned"
    _, other_private = new_key_pair()
    r = post(inbox, body, signed(mallory, inbox, body, private=other_private))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "bad_signature"
    r = post(inbox, body, signed(mallory, inbox, body, at=datetime.now(UTC) - timedelta(hours=1)))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "stale_signature"
    tampered = body.replace(b"likes/1", b"likes/2")
    r = post(inbox, tampered, signed(mallory, inbox, body))
    assert r.status_code == 401  # the Digest no longer matches
    big = json.dumps({**like, "pad": "x" * (live.settings.federation_max_body_bytes + 1)}).encode()
    r = post(inbox, big, signed(mallory, inbox, big))
    assert r.status_code == 413
    impostor = json.dumps({**like, "actor": "http://localhost:1/users/someone-else"}).encode()
    r = post(inbox, impostor, signed(mallory, inbox, impostor))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "wrong_actor"
    # the key of a verified signer is cached; nothing else was stored, nothing counted
    assert stored(platform)[1] == 0
    with platform.global_store.session() as g:
        video = g.get(PublishedVideo, video_id)
        assert video is not None
        assert video.like_count == 0

    # the same Like delivered twice counts once
    for _ in range(2):
        r = post(inbox, body, signed(mallory, inbox, body))
        assert r.status_code == 202, r.text
    with platform.global_store.session() as g:
        video = g.get(PublishedVideo, video_id)
        assert video is not None
        assert video.like_count == 1
    assert stored(platform) == (1, 1)

    # a blocked instance is refused again, whatever it signs
    fed_service.do_set_instance(platform, mallory.domain, InstanceState.BLOCKED)
    again = json.dumps({**like, "id": f"{mallory.origin}/likes/3"}).encode()
    r = post(inbox, again, signed(mallory, inbox, again))
    assert r.status_code == 403


def test_a_user_blocks_a_remote_actor_whose_follow_is_then_rejected(reelm_live, mallory) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from reelm.federation.delivery import list_deliveries
    from reelm.federation.models import RemoteFollower
    from reelm.social.models import Block, Notification
    from reelm.web.app import create_app

    live = reelm_live
    platform, fed = live.platform, live.fed
    fed_service.do_set_instance(platform, mallory.domain, InstanceState.ALLOWED)
    ava_id, ava_region, token = make_user(platform, live.settings, handle="ava")
    video_id = make_video(platform, owner_id=ava_id, region=ava_region)
    inbox = fed.urls.shared_inbox

    def send(activity: dict[str, object]) -> httpx.Response:
        body = json.dumps({"@context": "https://www.w3.org/ns/activitystreams",
                           "actor": mallory.actor, **activity}).encode()  # fmt: skip
        return post(inbox, body, signed(mallory, inbox, body))

    assert send({"id": f"{mallory.origin}/f/1", "type": "Follow",
                 "object": fed.urls.actor(ava_id)}).status_code == 202  # fmt: skip
    with platform.global_store.session() as g:
        assert g.scalar(select(func.count()).select_from(RemoteFollower)) == 1
    with TestClient(create_app(live.settings, platform=platform)) as web:
        r = web.post(f"/api/v1/federation/blocks/mallory@{mallory.domain}",
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 200, r.text
    with platform.global_store.session() as g:
        assert g.scalar(select(func.count()).select_from(RemoteFollower)) == 0  # follow removed
    with platform.region(ava_region).session() as s:
        assert s.scalar(select(func.count()).select_from(Block).where(Block.owner_id == ava_id)) == 1
        before = s.scalar(select(func.count()).select_from(Notification).where(Notification.owner_id == ava_id))

    # the blocked actor follows again: rejected; its like counts but notifies no one
    assert send({"id": f"{mallory.origin}/f/2", "type": "Follow",
                 "object": fed.urls.actor(ava_id)}).status_code == 202  # fmt: skip
    assert send({"id": f"{mallory.origin}/l/1", "type": "Like",
                 "object": fed.urls.video(video_id)}).status_code == 202  # fmt: skip
    with platform.global_store.session() as g:
        assert g.scalar(select(func.count()).select_from(RemoteFollower)) == 0
        video = g.get(PublishedVideo, video_id)
        assert video is not None
        assert video.like_count == 1
    assert [d.kind for d in list_deliveries(platform)].count("reject") == 1
    with platform.region(ava_region).session() as s:
        after = s.scalar(select(func.count()).select_from(Notification).where(Notification.owner_id == ava_id))
    assert after == before
