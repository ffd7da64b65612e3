"""Federation: inbound activities verified and stored per second, against the bare endpoint of
the same server; outbound fan-out of one video to 10,000 followers on 100 remote instances,
batched per shared inbox.

One embedded deployment (SQLite) is served by uvicorn on 127.0.0.1 with federation on (open
mode; loopback http, the test-only setting). Inbound: a signing peer on localhost publishes 40
actors (one RSA key); each of N `Like` activities (distinct ids, actors x videos) is signed with
draft-cavage HTTP Signatures and POSTed to the shared inbox, 8 in flight: reelm parses the
signature, verifies it with the (cached, after each actor's first request) key, checks the actor
and stores the like, its counters, its notification and the activity's id. The baseline is
`GET /api/v1/ping` with the same concurrency, right before and after. Every like must be
counted once. Outbound: 100 remote instances are 100 loopback addresses (127.0.0.2 ...
127.0.0.101) of one inbox server; 10,000 remote actors (100 per instance) follow the creator.
Publishing one video queues one delivery per shared inbox in the creator's region, in the same
transaction; `deliver_all` signs and POSTs them (16 at once). The baseline is 100 unsigned POSTs
of the same body to the same inboxes with the same pool.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, insert, select

from bench._common import Context, Outcome, fmt_rate, fmt_ratio, md_table

TITLE = "Federation: inbound activities/s verified and stored; fan-out to 10k followers on 100 instances"


class _Peer:
    """The signing side: actors /users/<n> on localhost, one RSA key for all of them."""

    def __init__(self, actors: int) -> None:
        from reelm.federation.signatures import new_key_pair

        self.public, self.private = new_key_pair()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                n = self.path.rsplit("/", 1)[-1]
                actor = f"{peer.origin}/users/{n}"
                body = json.dumps({
                    "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
                    "id": actor, "type": "Person", "preferredUsername": f"fan{n}",
                    "inbox": f"{actor}/inbox",
                    "publicKey": {"id": f"{actor}#main-key", "owner": actor, "publicKeyPem": peer.public},
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/activity+json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"
        self.actors = actors
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


class _Inboxes:
    """100 'instances': one server on every loopback address, counting POSTs per Host."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        inboxes = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                with inboxes.lock:
                    host = self.headers.get("Host", "")
                    inboxes.hits[host] = inboxes.hits.get(host, 0) + 1
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _serve(app: Any) -> tuple[uvicorn.Server, str]:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def _user(platform: Any, settings: Any, handle: str) -> tuple[str, str]:
    from reelm.accounts.schemas import SignUp
    from reelm.accounts.service import check_sign_up

    signed = check_sign_up(platform, settings, SignUp(
        handle=handle, password="correct horse battery", email=f"{handle}@example.org",
        birth_date=date(2000, 1, 1), jurisdiction="US"))  # fmt: skip
    return signed.account.id, signed.account.region


def _video(platform: Any, owner: str, region: str, caption: str) -> str:
    from reelm.db import utcnow
    from reelm.media.models import Upload, Video
    from reelm.media.publish import do_publish

    store = platform.regions[region]
    with store.transaction() as s:
        upload = Upload(owner_id=owner, declared_size=1, received=1, state="ready")
        s.add(upload)
        s.flush()
        video = Video(owner_id=owner, upload_id=upload.id, edit="{}", caption=caption,
                      visibility="public", state="ready", progress=100, duration_s=10.0,
                      width=720, height=1280, published_at=utcnow())  # fmt: skip
        s.add(video)
        s.flush()
        video_id = video.id
    do_publish(platform, store, video_id)
    return video_id


def _rate(n: int, fn: Any, workers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, range(n)))
    return n / (time.perf_counter() - start)


def run(ctx: Context) -> Outcome:
    from reelm.config import Settings
    from reelm.federation import service as fed
    from reelm.federation.delivery import deliver_all
    from reelm.federation.models import InboundActivity, RemoteActor, RemoteFollower
    from reelm.federation.signatures import sign_request
    from reelm.media.models import PublishedVideo
    from reelm.residency.models import REMOTE, REMOTE_REGION, DirectoryEntry
    from reelm.residency.service import do_init
    from reelm.web.app import create_app

    failures: list[str] = []
    n_likes = 400 if ctx.quick else 2000
    n_videos = 50
    data: Path = ctx.subdir("data")
    base = Settings(data_dir=data, argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1,
                    jobs_immediate=True)  # fmt: skip
    platform = do_init(base)
    # the port is known once the socket is bound; federation's URLs need it first
    app_settings = base.model_copy(update={"federation_mode": "open",
                                           "federation_loopback_http_for_tests": True,
                                           "federation_base_url": "http://127.0.0.1:0"})  # fmt: skip
    server, url = _serve(create_app(app_settings, platform=platform))
    settings = app_settings.model_copy(update={"federation_base_url": url})
    fed.disable(platform)
    fed.enable(platform, settings)  # the real origin (the app's routes read the same registry)
    federation = fed.federation_of(platform)
    assert federation is not None
    creator, region = _user(platform, settings, "creator")
    videos = [_video(platform, creator, region, f"clip {i}") for i in range(n_videos)]

    # inbound
    peer = _Peer(actors=40)
    inbox = federation.urls.shared_inbox
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=16))

    def like(i: int) -> None:
        actor = f"{peer.origin}/users/{i % peer.actors}"
        body = json.dumps({"@context": "https://www.w3.org/ns/activitystreams",
                           "id": f"{peer.origin}/likes/{i}", "type": "Like", "actor": actor,
                           "object": federation.urls.video(videos[(i // peer.actors) % n_videos])}).encode()  # fmt: skip
        headers = sign_request("POST", inbox, body, key_id=f"{actor}#main-key", private_pem=peer.private)
        r = client.post(inbox, content=body, headers={**headers, "Content-Type": "application/activity+json"})
        if r.status_code != 202:
            raise RuntimeError(f"{r.status_code} {r.text[:200]}")

    def ping(_i: int) -> None:
        client.get(f"{url}/api/v1/ping").raise_for_status()

    ctx.log(f"inbound: {n_likes} signed Likes, 8 in flight")
    for i in range(peer.actors):  # each actor's key fetched and cached once, outside the timing
        like(n_likes + i)
    bare_before = _rate(1000, ping, 8)
    inbound = _rate(n_likes, lambda i: like(i), 8)
    bare_after = _rate(1000, ping, 8)
    bare = statistics.mean([bare_before, bare_after])
    with platform.global_store.session() as g:
        likes = int(g.scalar(select(func.sum(PublishedVideo.like_count))) or 0)
        stored = int(g.scalar(select(func.count()).select_from(InboundActivity)) or 0)
    distinct = len({(i % peer.actors, (i // peer.actors) % n_videos) for i in range(n_likes + peer.actors)})
    if likes != distinct:
        failures.append(f"likes counted {likes}, distinct (actor, video) pairs {distinct}")
    if stored != n_likes + peer.actors:
        failures.append(f"inbound ids stored {stored}, sent {n_likes + peer.actors}")

    # outbound fan-out
    inboxes = _Inboxes()
    instances = [f"127.0.0.{2 + i}:{inboxes.port}" for i in range(100)]
    ctx.log("outbound: seeding 10,000 remote followers on 100 instances")
    from reelm.db import new_id

    entries, actors, followers = [], [], []
    for domain in instances:
        for k in range(100):
            rid = new_id()
            uri = f"http://{domain}/users/{k}"
            entries.append({"user_id": rid, "handle": f"f{k}@{domain}"[:30], "handle_key": f"~{rid[:29]}",
                            "home_region": REMOTE_REGION, "state": REMOTE})  # fmt: skip
            actors.append({"id": rid, "uri": uri, "domain": domain, "acct": f"f{k}@{domain}",
                           "inbox": f"{uri}/inbox", "shared_inbox": f"http://{domain}/inbox",
                           "key_id": f"{uri}#main-key", "public_pem": peer.public})  # fmt: skip
            followers.append({"id": new_id(), "remote_id": rid, "user_id": creator,
                              "state": "active", "follow_uri": f"{uri}/follows/1"})  # fmt: skip
    with platform.global_store.engine.begin() as c:
        c.execute(insert(DirectoryEntry.__table__), entries)  # type: ignore[arg-type]
        c.execute(insert(RemoteActor.__table__), actors)  # type: ignore[arg-type]
        c.execute(insert(RemoteFollower.__table__), followers)  # type: ignore[arg-type]
    start = time.perf_counter()
    _video(platform, creator, region, "one for everyone #fanout")
    queued_s = time.perf_counter() - start
    report = deliver_all(federation)
    fanout_s = time.perf_counter() - start
    hits = dict(inboxes.hits)
    if report.sent != 100 or len(hits) != 100 or any(v != 1 for v in hits.values()):
        failures.append(f"fan-out sent {report.sent}, hosts hit {len(hits)}: {report.errors[:3]}")
    body = b"x" * 3000
    start = time.perf_counter()
    with httpx.Client(timeout=10.0) as plain, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda d: plain.post(f"http://{d}/inbox", content=body), instances))
    bare_fan_s = time.perf_counter() - start

    server.should_exit = True
    client.close()
    fed.disable(platform)
    platform.close()
    table1 = md_table(
        ["what", "per second", "÷ bare"],
        [["bare endpoint `GET /api/v1/ping` (mean of before and after)", fmt_rate(bare), "1"],
         ["**signed `Like` verified and stored** (shared inbox)", fmt_rate(inbound), fmt_ratio(inbound / bare)]],
        "lrr",
    )  # fmt: skip
    table2 = md_table(
        ["what", "seconds", "÷ bare"],
        [["baseline: 100 unsigned POSTs, one per instance, 16 at once", f"{bare_fan_s:.3f}", "1"],
         ["publish: the video and its 100 deliveries queued in one transaction", f"{queued_s:.3f}", fmt_ratio(queued_s / bare_fan_s)],
         ["**publish + deliver to 10,000 followers on 100 instances** (100 signed POSTs)", f"{fanout_s:.3f}", fmt_ratio(fanout_s / bare_fan_s)]],
        "lrr",
    )  # fmt: skip
    text = f"""**Inbound ({n_likes:,} signed Likes from 40 remote actors, 8 in flight, SQLite):**

{table1}

**Outbound fan-out of one video to 10,000 remote followers on 100 instances (SQLite):**

{table2}

A shared inbox stands for all of an instance's followers, so 10,000 followers cost 100 requests
(each instance received exactly one). Every inbound request pays an RSA-2048 verification, a
JSON parse, and writes in two databases (the like and its counters in the catalog, the
notification in the creator's region); every outbound request pays an RSA-2048 signature.
"""
    return Outcome(text, failures)
