"""Two reelm deployments on loopback (two data folders, two ports, two hosts: 127.0.0.1 and
localhost) after a hand-over of US users to another operator: the moved user and a user who
stayed follow each other again without doing anything (federated follows re-established by
`import` and `finish`), see each other's new videos in Following, like and comment across the
boundary; the residency scan is clean on both; the moved user's actor URL at the source answers
301 with `movedTo`."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from helpers import make_user, make_video
from reelm import migrations
from reelm.accounts.service import access_session
from reelm.carveout.bundle import public_text, recipient_key
from reelm.carveout.handover import do_export, do_finish_export, do_import
from reelm.carveout.report import operator_signer
from reelm.config import Settings
from reelm.federation import delivery
from reelm.federation import service as fed_service
from reelm.federation.models import InstanceState, RemoteActor, RemoteFollower
from reelm.feed.service import following_feed
from reelm.media.models import PublishedVideo
from reelm.residency.policy import load_policy
from reelm.residency.scan import do_scan
from reelm.residency.service import do_activate_policy
from reelm.residency.store import Platform, make_engine
from reelm.social.models import Follow, PublicComment
from reelm.social.schemas import CommentCreate
from reelm.social.service import do_comment, do_follow, do_like
from reelm.web.app import create_app

OTHER_POLICY = """
version = "usds-2021"
never_store_in = ["CN"]

[operators.usds]
name = "USDS Joint Venture LLC"
country = "US"

[regions.us]
location = "US"
operator = "usds"
database_url = "sqlite:///{data_dir}/regions/us.db"
blob_store = "{data_dir}/regions/us/blobs"

[assignment]
default_region = "us"
"""


@dataclass
class Deployment:
    platform: Platform
    settings: Settings
    url: str
    fed: fed_service.Federation


def free_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _serve(platform: Platform, settings: Settings, sock: object) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(create_app(settings, platform=platform),
                                           log_level="warning", lifespan="off"))  # fmt: skip
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    return server


def _federating(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"federation_base_url": url,
                                       "federation_loopback_http_for_tests": True})  # fmt: skip


@pytest.fixture
def source(platform: Platform, settings: Settings) -> Iterator[Deployment]:
    """The deployment the US users leave: the suite's platform, as http://127.0.0.1:PORT."""
    sock = free_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    s = _federating(settings, url)
    server = _serve(platform, s, sock)
    fed = fed_service.federation_of(platform)
    assert fed is not None
    yield Deployment(platform, s, url, fed)
    server.should_exit = True
    fed_service.disable(platform)


@pytest.fixture
def recipient(tmp_path: Path, platform: Platform) -> Iterator[Deployment]:
    """Another operator's deployment: its own data folder and databases, as
    http://localhost:PORT."""
    data = tmp_path / "usds"
    data.mkdir()
    (data / "policy.toml").write_text(OTHER_POLICY)
    dropped: list[str] = []
    if platform.global_store.engine.url.get_backend_name() == "postgresql":
        import pgserver

        server_pg = pgserver.get_server(
            Path(os.environ.get("REELM_TEST_PGDATA", "/tmp/reelm-test-pgdata")), cleanup_mode="stop"
        )
        urls = {}
        for name in ("global", "us"):
            db = f"reelm_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_fed_{name}"
            server_pg.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")
            server_pg.psql(f"CREATE DATABASE {db};")
            urls[name] = server_pg.get_uri(db)
            dropped.append(db)
    else:
        urls = {"global": f"sqlite:///{data / 'global.db'}", "us": f"sqlite:///{data / 'us.db'}"}
    migrations.upgrade(make_engine(urls["global"]), "global")
    migrations.upgrade(make_engine(urls["us"]), "region")
    policy = load_policy(data / "policy.toml", data_dir=data)
    other = Platform(policy=policy, global_url=urls["global"], keys_dir=data / "keys",
                     region_urls={"us": urls["us"]})  # fmt: skip
    do_activate_policy(other, policy)
    sock = free_port()
    url = f"http://localhost:{sock.getsockname()[1]}"
    s = _federating(Settings(data_dir=data, argon2_time_cost=1, argon2_memory_kib=64,
                             argon2_parallelism=1, jobs_immediate=True,
                             audit_origin="usds.example/{region}"), url)  # fmt: skip
    server = _serve(other, s, sock)
    fed = fed_service.federation_of(other)
    assert fed is not None
    try:
        yield Deployment(other, s, url, fed)
    finally:
        server.should_exit = True
        fed_service.disable(other)
        other.close()
        for db in dropped:
            server_pg.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")


def deliver(*deployments: Deployment) -> None:
    """Both sides' delivery loops, until nothing is left to send (what the workers do)."""
    for _ in range(4):
        sent = sum(delivery.deliver_all(d.fed, due_only=False).sent for d in deployments)
        if not sent:
            return
    for d in deployments:
        left = delivery.list_deliveries(d.platform)
        assert not left, [(x.kind, x.inbox, x.last_error) for x in left]


def test_after_a_hand_over_the_two_deployments_stay_one_network(
    source: Deployment, recipient: Deployment, tmp_path: Path
) -> None:
    a, b = source, recipient
    fed_service.do_set_instance(a.platform, b.fed.domain, InstanceState.ALLOWED)
    fed_service.do_set_instance(b.platform, a.fed.domain, InstanceState.ALLOWED)
    mover_id, mover_region, mover_token = make_user(a.platform, a.settings, handle="ava_us", jurisdiction="US")
    stayer_id, stayer_region, stayer_token = make_user(a.platform, a.settings, handle="gus_sg", jurisdiction="SG")
    mover = access_session(a.platform, mover_token)
    stayer = access_session(a.platform, stayer_token)
    do_follow(a.platform, mover, "gus_sg")
    do_follow(a.platform, stayer, "ava_us")

    # the hand-over: export at the source, import at the recipient, finish at the source
    bundle = tmp_path / "handover.bundle"
    _bundle_id, users = do_export(
        a.platform, a.settings, jurisdictions=["US"], out=bundle, recipient_url=b.url,
        recipient=public_text(recipient_key(b.settings).public_key()),
    )  # fmt: skip
    assert users == 1
    receipt = do_import(b.platform, b.settings, bundle=bundle,
                        source_key=operator_signer(a.settings).verifier.vkey())  # fmt: skip
    deliver(a, b)
    do_finish_export(a.platform, a.settings, receipt=receipt,
                     importer_key=operator_signer(b.settings).verifier.vkey())  # fmt: skip
    deliver(a, b)

    # follows both ways, now across the boundary, both accepted
    with a.platform.global_store.session() as g:
        mover_at_a = g.scalar(select(RemoteActor).where(RemoteActor.uri == b.fed.urls.actor(mover_id)))
        assert mover_at_a is not None
        follower = g.scalar(select(RemoteFollower).where(RemoteFollower.user_id == stayer_id))
        assert follower is not None
        assert follower.remote_id == mover_at_a.id
        assert follower.state == "active"
    with a.platform.region(stayer_region).session() as s:
        follow = s.scalar(select(Follow).where(Follow.owner_id == stayer_id))
        assert follow is not None
        assert (follow.followee_id, follow.state) == (mover_at_a.id, "active")
    with b.platform.global_store.session() as g:
        stayer_at_b = g.scalar(select(RemoteActor).where(RemoteActor.uri == a.fed.urls.actor(stayer_id)))
        assert stayer_at_b is not None
        follower = g.scalar(select(RemoteFollower).where(RemoteFollower.user_id == mover_id))
        assert follower is not None
        assert (follower.remote_id, follower.state) == (stayer_at_b.id, "active")
    with b.platform.region("us").session() as s:
        follow = s.scalar(select(Follow).where(Follow.owner_id == mover_id))
        assert follow is not None
        assert (follow.followee_id, follow.state) == (stayer_at_b.id, "active")

    # new videos reach each other's Following
    stayer_video = make_video(a.platform, owner_id=stayer_id, region=stayer_region, caption="from sg")
    mover_video = make_video(b.platform, owner_id=mover_id, region="us", caption="from usds")
    deliver(a, b)
    mover_b = access_session(b.platform, mover_token)  # the session moved with her
    feed_b = following_feed(b.platform, mover_b, cursor=None)
    assert [i.video.caption for i in feed_b.items] == ["from sg"]
    assert feed_b.items[0].video.urls["mp4"].startswith(a.url)
    feed_a = following_feed(a.platform, stayer, cursor=None)
    assert [i.video.caption for i in feed_a.items] == ["from usds"]

    # likes and comments cross the boundary
    remote_at_b = feed_b.items[0].video.id
    remote_at_a = feed_a.items[0].video.id
    do_like(b.platform, mover_b, remote_at_b)
    do_comment(b.platform, mover_b, remote_at_b, CommentCreate(text="hello from the other side"))
    do_like(a.platform, stayer, remote_at_a)
    do_comment(a.platform, stayer, remote_at_a, CommentCreate(text="welcome to usds"))
    deliver(a, b)
    with a.platform.global_store.session() as g:
        video = g.get(PublishedVideo, stayer_video)
        assert video is not None
        assert (video.like_count, video.comment_count) == (1, 1)
        texts = list(g.scalars(select(PublicComment.text).where(PublicComment.video_id == stayer_video)))
        assert texts == ["hello from the other side"]
    with b.platform.global_store.session() as g:
        video = g.get(PublishedVideo, mover_video)
        assert video is not None
        assert (video.like_count, video.comment_count) == (1, 1)

    # residency holds on both sides; the moved actor's old URL points to her new home
    assert do_scan(a.platform).clean
    assert do_scan(b.platform).clean
    r = httpx.get(a.fed.urls.actor(mover_id), headers={"Accept": "application/activity+json"})
    assert r.status_code == 301
    assert r.headers["location"] == b.fed.urls.actor(mover_id)
    assert r.json()["movedTo"] == b.fed.urls.actor(mover_id)
