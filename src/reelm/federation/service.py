"""Federation's logic: this deployment's public documents (WebFinger, actors, outboxes,
videos), the inbox (signature checked before anything is stored), the remote actor cache,
local users following remote ones, and the delivery of local activities to remote inboxes.

Residency across federation:
- out: a delivery is made only from an Egress record, in the transaction of the action that
  emits it (`_federate`, registered with the outbox), and stored in the actor's home region
  (`fed_deliveries`); the document sent is built from that record by `activities.py`;
- in: remote actors, videos, comments, likes and follows of local users by remote actors are
  public remote data, written into the global catalog; what reaches a local user (a
  notification, the answer to their follow) is written in their home region;
- a local user's follow, like or comment of remote content is theirs, in their region, as any.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reelm.accounts.schemas import PublicProfileRecord
from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.db import new_id, utcnow
from reelm.effects.outbox import federate_with
from reelm.effects.service import action
from reelm.errors import Forbidden, InvalidInput, NotFound, ReelmError, UserNotFound
from reelm.federation import activities as ap
from reelm.federation.models import (
    ActorKey,
    Delivery,
    DeliveryState,
    InboundActivity,
    Instance,
    InstanceState,
    RemoteActor,
    RemoteFollower,
    RemoteLike,
    RemoteObject,
)
from reelm.federation.signatures import (
    SignatureRefused,
    SignedRequest,
    new_key_pair,
    parse_signature,
    sign_request,
)
from reelm.media.models import PublishedVideo, VideoTag
from reelm.media.schemas import PublicVideoRecord, VideoWithdrawal
from reelm.media.service import media_urls
from reelm.residency.egress import PublicRecord, egress, schema_named
from reelm.residency.models import (
    ACTIVE,
    MOVING,
    REMOTE,
    REMOTE_REGION,
    DirectoryEntry,
    PublicProfile,
)
from reelm.residency.store import Platform
from reelm.social.models import Block, Follow, FollowStatus, PublicComment
from reelm.social.schemas import (
    CommentRemoval,
    CountChange,
    CounterKind,
    NotificationRecord,
    PublicCommentRecord,
    end_follow,
)

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)
SEND_THREADS = 16


class FederationOff(NotFound):
    code = "federation_off"


class InstanceRefused(Forbidden):
    code = "instance_refused"


class WrongActor(Forbidden):
    code = "wrong_actor"


class RemoteUnreachable(ReelmError):
    status = 502
    code = "remote_unreachable"


@dataclass
class Federation:
    """Federation of one deployment: its platform, settings and public URLs."""

    platform: Platform
    settings: Settings
    urls: ap.Urls
    client: httpx.Client = field(repr=False)

    @property
    def domain(self) -> str:
        return urlsplit(self.urls.base).netloc


_ON: dict[tuple[str, str], Federation] = {}
_ON_LOCK = threading.Lock()


def enable(platform: Platform, settings: Settings) -> Federation | None:
    """Turn federation on for `platform` in this process (when `federation_base_url` is set):
    the outbox's federator then finds it from any of the platform's region sessions. Without
    the setting, federation is turned off for the platform's databases."""
    keys = [(name, str(store.url)) for name, store in platform.regions.items()]
    keys.append(("global", str(platform.global_store.engine.url)))
    base = settings.federation_base_url
    with _ON_LOCK:
        current = _ON.get(keys[-1])
        if current is not None and current.platform is platform and base:
            return current
        for key in keys:
            _ON.pop(key, None)
        if not base:
            return None
        fed = Federation(
            platform, settings, ap.Urls(base.rstrip("/")),
            httpx.Client(timeout=10.0, follow_redirects=False,
                         headers={"User-Agent": "reelm (ActivityPub)"}),
        )  # fmt: skip
        for key in keys:
            _ON[key] = fed
    return fed


def federation_of(platform: Platform) -> Federation | None:
    return _ON.get(("global", str(platform.global_store.engine.url)))


def require(platform: Platform) -> Federation:
    fed = federation_of(platform)
    if fed is None:
        raise FederationOff("Federation is off on this deployment (set REELM_FEDERATION_BASE_URL).")
    return fed


def disable(platform: Platform) -> None:
    with _ON_LOCK:
        for key in [k for k, f in _ON.items() if f.platform is platform]:
            fed = _ON.pop(key)
            fed.client.close()


def _session_federation(session: Session) -> Federation | None:
    region = session.info.get("region")
    if region is None:
        return None
    return _ON.get((region, str(session.get_bind().engine.url)))


# --- instances ---------------------------------------------------------------------------------


def domain_of(url: str) -> str:
    return urlsplit(url).netloc.lower()


def instance_allows(fed: Federation, domain: str) -> bool:
    with fed.platform.global_store.session() as g:
        state = g.scalar(select(Instance.state).where(Instance.domain == domain))
    if state == InstanceState.BLOCKED:
        return False
    return fed.settings.federation_mode == "open" or state == InstanceState.ALLOWED


def check_instance(fed: Federation, domain: str) -> None:
    if domain == fed.domain:
        return
    if not instance_allows(fed, domain):
        raise InstanceRefused(f"This server does not federate with {domain}.")


def do_set_instance(platform: Platform, domain: str, state: InstanceState) -> None:
    domain = domain.strip().lower()
    if not domain or "/" in domain or " " in domain:
        raise InvalidInput("Give a domain (host or host:port), not a URL.", code="bad_domain")
    with platform.global_store.transaction() as g:
        row = g.get(Instance, domain)
        if row is None:
            g.add(Instance(domain=domain, state=state))
        else:
            row.state = state


@dataclass(frozen=True)
class InstanceInfo:
    domain: str
    state: str
    actors: int
    followers: int
    videos: int
    last_seen: datetime


def list_instances(platform: Platform) -> list[InstanceInfo]:
    with platform.global_store.session() as g:
        actors = dict(g.execute(select(RemoteActor.domain, func.count()).group_by(RemoteActor.domain)).all())
        followers = dict(
            g.execute(
                select(RemoteActor.domain, func.count())
                .join(RemoteFollower, RemoteFollower.remote_id == RemoteActor.id)
                .group_by(RemoteActor.domain)
            ).all()
        )
        videos = dict(
            g.execute(
                select(RemoteActor.domain, func.count())
                .join(RemoteObject, RemoteObject.actor_id == RemoteActor.id)
                .where(RemoteObject.kind == "video")
                .group_by(RemoteActor.domain)
            ).all()
        )
        rows = list(g.scalars(select(Instance).order_by(Instance.domain)))
    return [
        InstanceInfo(r.domain, r.state, actors.get(r.domain, 0), followers.get(r.domain, 0),
                     videos.get(r.domain, 0), r.last_seen)  # fmt: skip
        for r in rows
    ]


def _seen(g: Session, domain: str) -> None:
    row = g.get(Instance, domain)
    if row is None:
        g.add(Instance(domain=domain, state=InstanceState.KNOWN))
    else:
        row.last_seen = utcnow()


# --- fetching remote documents ------------------------------------------------------------------


def check_fetchable(fed: Federation, url: str) -> None:
    """Refuse URLs federation must not fetch: not https (plain http only with the test-only
    setting), or pointing at loopback/private addresses (request forgery)."""
    parts = urlsplit(url)
    loopback_ok = fed.settings.federation_loopback_http_for_tests
    if parts.scheme != "https" and not (loopback_ok and parts.scheme == "http"):
        raise InvalidInput(f"Federation fetches only https URLs, not {url!r}.", code="bad_url")
    host = parts.hostname or ""
    if loopback_ok:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise RemoteUnreachable(f"{host}: {e}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved:
            raise InvalidInput(f"{host} resolves to a private address.", code="bad_url")


def fetch_json(fed: Federation, url: str) -> Any:
    check_fetchable(fed, url)
    try:
        r = fed.client.get(url, headers={"Accept": f"{ap.ACTIVITY_JSON}, {ap.LD_JSON}"})
    except httpx.HTTPError as e:
        raise RemoteUnreachable(f"{url}: {e}") from None
    if r.status_code != 200:
        raise RemoteUnreachable(f"{url} answered {r.status_code}")
    if len(r.content) > fed.settings.federation_max_body_bytes * 4:
        raise RemoteUnreachable(f"{url}: document too large")
    try:
        return r.json()
    except ValueError:
        raise RemoteUnreachable(f"{url} did not answer JSON") from None


def _acct(doc: ap.RemoteActorDoc) -> str:
    return f"{doc.preferred_username or 'actor'}@{domain_of(doc.uri)}"


def _store_actor(g: Session, doc: ap.RemoteActorDoc, *, local_id: str | None = None) -> RemoteActor:
    """Insert or refresh the cached actor and its Directory entry (state remote)."""
    row = g.scalar(select(RemoteActor).where(RemoteActor.uri == doc.uri))
    acct = _acct(doc)
    if row is None:
        uid = local_id or new_id()
        entry = g.get(DirectoryEntry, uid)
        if entry is None:
            g.add(
                DirectoryEntry(
                    user_id=uid, handle=acct[:30],
                    handle_key="~" + hashlib.sha256(doc.uri.encode()).hexdigest()[:29],
                    home_region=REMOTE_REGION, state=REMOTE,
                )
            )  # fmt: skip
            g.flush()
        row = RemoteActor(id=uid, uri=doc.uri)
        g.add(row)
    row.domain = domain_of(doc.uri)
    row.acct = acct
    row.inbox = doc.inbox
    row.shared_inbox = doc.shared_inbox
    row.key_id = doc.key_id
    row.public_pem = doc.public_pem
    row.display_name = doc.name[:200]
    row.moved_to = doc.moved_to
    row.fetched_at = utcnow()
    _seen(g, row.domain)
    g.flush()
    return row


def remote_actor(fed: Federation, uri: str, *, refresh: bool = False) -> RemoteActor:
    """The cached actor of `uri`, fetched (and cached) when unknown or when `refresh`."""
    with fed.platform.global_store.session() as g:
        row = g.scalar(select(RemoteActor).where(RemoteActor.uri == uri))
    if row is not None and not refresh:
        return row
    doc = ap.parse_actor(fetch_json(fed, uri))
    if doc.uri != uri:
        raise RemoteUnreachable(f"{uri} answered the actor {doc.uri}")
    check_instance(fed, domain_of(doc.uri))
    with fed.platform.global_store.transaction() as g:
        return _store_actor(g, doc)


def resolve_account(fed: Federation, account: str) -> RemoteActor:
    """`user@host` (or an actor URL) to its cached actor, through the host's WebFinger."""
    account = account.strip().removeprefix("@").removeprefix("acct:")
    if account.startswith(("https://", "http://")):
        check_instance(fed, domain_of(account))
        return remote_actor(fed, account)
    user, _, host = account.partition("@")
    if not user or not host:
        raise InvalidInput("Give a remote account as user@host.", code="bad_account")
    check_instance(fed, host.lower())
    scheme = "http" if fed.settings.federation_loopback_http_for_tests else "https"
    doc = fetch_json(
        fed, f"{scheme}://{host}/.well-known/webfinger?resource=acct:{user}@{host}"
    )
    links = doc.get("links", []) if isinstance(doc, dict) else []
    for link in links:
        if (
            isinstance(link, dict)
            and link.get("rel") == "self"
            and "activity+json" in str(link.get("type", "")) + "activity+json"
            and isinstance(link.get("href"), str)
        ):
            return remote_actor(fed, link["href"])
    raise RemoteUnreachable(f"{account} has no ActivityPub actor")


# --- local actors and their documents -----------------------------------------------------------


def actor_key(platform: Platform, user_id: str) -> ActorKey:
    """The actor's key pair, made at first use."""
    with platform.global_store.session() as g:
        row = g.get(ActorKey, user_id)
    if row is not None:
        return row
    public, private = new_key_pair()
    try:
        with platform.global_store.transaction() as g:
            row = ActorKey(user_id=user_id, public_pem=public, private_pem=private)
            g.add(row)
        return row
    except IntegrityError:
        with platform.global_store.session() as g:
            found = g.get(ActorKey, user_id)
        assert found is not None
        return found


@dataclass(frozen=True)
class LocalActor:
    user_id: str
    handle: str
    region: str
    state: str


def local_actor(platform: Platform, user_id: str) -> LocalActor:
    with platform.global_store.session() as g:
        e = g.get(DirectoryEntry, user_id)
    if e is None or e.state not in (ACTIVE, MOVING):
        raise UserNotFound()
    return LocalActor(e.user_id, e.handle, e.home_region, e.state)


def local_actor_by_handle(platform: Platform, handle: str) -> LocalActor:
    with platform.global_store.session() as g:
        e = g.scalar(select(DirectoryEntry).where(DirectoryEntry.handle_key == handle.lower()))
    if e is None or e.state not in (ACTIVE, MOVING):
        raise UserNotFound(handle)
    return LocalActor(e.user_id, e.handle, e.home_region, e.state)


def webfinger(fed: Federation, resource: str) -> dict[str, Any]:
    res = resource.removeprefix("acct:")
    if resource.startswith(("https://", "http://")):
        user_id = resource.rstrip("/").rsplit("/", 1)[-1]
        actor = local_actor(fed.platform, user_id)
    else:
        handle, _, host = res.partition("@")
        if host.lower() != fed.domain.lower():
            raise NotFound(f"{resource} is not an account of this server.")
        actor = local_actor_by_handle(fed.platform, handle)
    uri = fed.urls.actor(actor.user_id)
    return {
        "subject": f"acct:{actor.handle}@{fed.domain}",
        "aliases": [uri, fed.urls.profile_page(actor.handle)],
        "links": [
            {"rel": "self", "type": ap.ACTIVITY_JSON, "href": uri},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
             "href": fed.urls.profile_page(actor.handle)},
        ],
    }  # fmt: skip


def _profile_record(g: Session, user_id: str) -> PublicProfileRecord:
    """The profile as the PUBLIC record that was egressed: the only input to an actor doc."""
    row = g.get(PublicProfile, user_id)
    if row is None:
        raise UserNotFound()
    return PublicProfileRecord(
        user_id=row.user_id, handle=row.handle, display_name=row.display_name, bio=row.bio,
        avatar_url=row.avatar_url, region=row.region,
    )  # fmt: skip


def _is_private(platform: Platform, actor: LocalActor) -> bool:
    from reelm.social.service import Person, is_private

    return is_private(platform, Person(actor.user_id, actor.handle, actor.region))


def actor_document(fed: Federation, user_id: str) -> dict[str, Any]:
    actor = local_actor(fed.platform, user_id)
    with fed.platform.global_store.session() as g:
        profile = _profile_record(g, actor.user_id)
    key = actor_key(fed.platform, actor.user_id)
    return ap.actor_document(
        fed.urls, profile, public_pem=key.public_pem,
        private_account=_is_private(fed.platform, actor),
    )  # fmt: skip


def _video_record(g: Session, row: PublishedVideo) -> PublicVideoRecord:
    """A catalog video as the PUBLIC record that put it there."""
    tags = g.execute(select(VideoTag.kind, VideoTag.value).where(VideoTag.video_id == row.id)).all()
    return PublicVideoRecord(
        id=row.id, creator_id=row.creator_id, creator_handle=row.creator_handle,
        region=row.region, caption=row.caption,
        hashtags=[v for k, v in tags if k == "hashtag"],
        mentions=[v for k, v in tags if k == "mention"],
        visibility="followers" if row.visibility == "followers" else "public",
        allow_comments=row.allow_comments, allow_sound_reuse=row.allow_sound_reuse,
        sound_id=row.sound_id, duration_s=row.duration_s, width=row.width, height=row.height,
        published_at=row.published_at,
    )  # fmt: skip


def video_object(fed: Federation, video: PublicVideoRecord) -> dict[str, Any]:
    return ap.video_object(fed.urls, video, media_urls(video.id, video.published_at))


def video_document(fed: Federation, video_id: str) -> dict[str, Any]:
    with fed.platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        if row is None or row.region == REMOTE_REGION or row.visibility != "public":
            raise NotFound("No such public video here.", code="video_not_found")
        record = _video_record(g, row)
    return {"@context": ap.CONTEXT, **video_object(fed, record)}


def _create_video(fed: Federation, video: PublicVideoRecord, *, update: bool = False) -> dict[str, Any]:
    obj = video_object(fed, video)
    kind = "Update" if update else "Create"
    suffix = "/update" if update else "/create"
    return ap.activity(
        kind, id=obj["id"] + suffix, actor=fed.urls.actor(video.creator_id), obj=obj,
        to=obj["to"], cc=obj["cc"], published=video.published_at,
    )  # fmt: skip


def outbox_document(fed: Federation, user_id: str, *, limit: int = 20) -> dict[str, Any]:
    """The actor's public videos, newest first, as Create activities (one page inline)."""
    actor = local_actor(fed.platform, user_id)
    with fed.platform.global_store.session() as g:
        base = select(PublishedVideo).where(
            PublishedVideo.creator_id == actor.user_id, PublishedVideo.visibility == "public"
        )
        total = g.scalar(select(func.count()).select_from(base.subquery())) or 0
        rows = list(g.scalars(base.order_by(PublishedVideo.published_at.desc()).limit(limit)))
        records = [_video_record(g, r) for r in rows]
    return {
        "@context": ap.CONTEXT,
        "id": fed.urls.outbox(actor.user_id),
        "type": "OrderedCollection",
        "totalItems": int(total),
        "orderedItems": [_create_video(fed, r) for r in records],
    }


def followers_document(fed: Federation, user_id: str) -> dict[str, Any]:
    """Counts only: who follows whom is not published here."""
    from reelm.social.models import PublicCounts

    actor = local_actor(fed.platform, user_id)
    with fed.platform.global_store.session() as g:
        counts = g.get(PublicCounts, actor.user_id)
    return {
        "@context": ap.CONTEXT, "id": fed.urls.followers(actor.user_id),
        "type": "OrderedCollection", "totalItems": counts.followers if counts else 0,
    }  # fmt: skip


def comment_document(fed: Federation, comment_id: str) -> dict[str, Any]:
    with fed.platform.global_store.session() as g:
        row = g.get(PublicComment, comment_id)
        if row is None or g.get(RemoteObject, comment_id) is not None:
            raise NotFound("No such comment here.", code="comment_not_found")
        record = PublicCommentRecord(
            id=row.id, video_id=row.video_id, author_id=row.author_id,
            author_handle=row.author_handle, parent_id=row.parent_id, text=row.text,
            created_at=row.created_at,
        )  # fmt: skip
        reply_to = _object_uri(fed, g, row.parent_id or row.video_id, kind="comment" if row.parent_id else "video")
    return {"@context": ap.CONTEXT, **ap.note_object(fed.urls, record, in_reply_to=reply_to, to=[])}


def _object_uri(fed: Federation, g: Session, local_id: str, *, kind: str) -> str:
    remote = g.get(RemoteObject, local_id)
    if remote is not None:
        return remote.uri
    return fed.urls.video(local_id) if kind == "video" else fed.urls.comment(local_id)


def moved_actor_location(platform: Platform, user_id: str) -> str | None:
    """Where a user handed over to another operator now lives (`<their url>/ap/actors/<id>`),
    read from the finished hand-over's journal; None for anyone else."""
    from reelm.carveout.journal import JOURNAL, RUNS
    from reelm.carveout.models import DONE, EXPORT, FINISHED

    with platform.global_store.engine.connect() as c:
        row = c.execute(
            select(RUNS.c.detail)
            .join(JOURNAL, JOURNAL.c.run_id == RUNS.c.id)
            .where(JOURNAL.c.user_id == user_id, JOURNAL.c.step == FINISHED,
                   RUNS.c.kind == EXPORT, RUNS.c.state == DONE)  # fmt: skip
        ).first()
    if row is None:
        return None
    url = json.loads(row[0]).get("recipient_url")
    return f"{str(url).rstrip('/')}/ap/actors/{user_id}" if url else None


# --- the federator: deliveries written with the action that causes them -------------------------

FOLLOWER_KINDS = {"video", "video_update", "video_delete", "profile"}


def _federate(session: Session, actor_id: str, record: PublicRecord, hint: str | None) -> bool:
    """Called for every record an action emits (see `Outbox.emit`). Adds the deliveries it
    causes to the action's session; answers whether the record is still emitted as an effect
    (a notification for a remote actor is not: its delivery replaces it)."""
    fed = _session_federation(session)
    if fed is None:
        return hint != REMOTE_REGION
    try:
        return _federate_with(fed, session, actor_id, record, hint)
    except ReelmError:
        raise
    except Exception:
        log.exception("federation: deliveries of a %s by %s not made", type(record).__name__, actor_id)
        raise


def _federate_with(
    fed: Federation, session: Session, actor_id: str, record: PublicRecord, hint: str | None
) -> bool:
    pending = session.info.setdefault("fed_comments", {})
    if isinstance(record, PublicVideoRecord):
        with fed.platform.global_store.session() as g:
            known = g.get(PublishedVideo, record.id) is not None
        _queue(fed, session, actor_id, "video_update" if known else "video", record)
    elif isinstance(record, VideoWithdrawal):
        _queue(fed, session, actor_id, "video_delete", record)
    elif isinstance(record, PublicProfileRecord):
        _queue(fed, session, actor_id, "profile", record)
    elif isinstance(record, PublicCommentRecord):
        pending[record.id] = record
    elif isinstance(record, CommentRemoval):
        with fed.platform.global_store.session() as g:
            remote_video = g.get(RemoteObject, record.video_id)
            target = remote_video.actor_id if remote_video is not None else None
        if target is not None:
            _queue(fed, session, actor_id, "comment_delete", record, target_id=target)
    elif isinstance(record, CountChange) and record.field == CounterKind.LIKE_COUNT and record.delta < 0:
        with fed.platform.global_store.session() as g:
            remote_video = g.get(RemoteObject, record.id)
            target = remote_video.actor_id if remote_video is not None else None
        if target is not None:
            _queue(fed, session, actor_id, "undo_like", record, target_id=target)
    elif isinstance(record, NotificationRecord) and hint == REMOTE_REGION:
        if record.kind == "like":
            _queue(fed, session, actor_id, "like", record, target_id=record.recipient_id)
        elif (
            record.kind in ("comment", "reply")
            and record.comment_id in pending
            and record.comment_id not in session.info.setdefault("fed_sent", set())
        ):
            session.info["fed_sent"].add(record.comment_id)
            _queue(fed, session, actor_id, "comment", pending[record.comment_id],
                       target_id=record.recipient_id)  # fmt: skip
        return False
    return True


def _queue(
    fed: Federation, session: Session, actor_id: str, kind: str, record: PublicRecord,
    *, target_id: str | None = None, extra: dict[str, Any] | None = None,
) -> int:  # fmt: skip
    """Add the deliveries of one activity to `session` (the actor's region): one per remote
    inbox, a shared inbox standing for every follower on its server."""
    inboxes = _inboxes(fed, actor_id, kind, target_id)
    if not inboxes:
        return 0
    activity_id = new_id()
    payload = json.dumps({"kind": type(record).__name__, "record": record.model_dump(mode="json"),
                          **(extra or {})})  # fmt: skip
    session.add_all(
        Delivery(owner_id=actor_id, activity_id=activity_id, kind=kind, record=payload,
                 target_id=target_id, inbox=inbox)  # fmt: skip
        for inbox in inboxes
    )
    return len(inboxes)


def _inboxes(fed: Federation, actor_id: str, kind: str, target_id: str | None) -> list[str]:
    with fed.platform.global_store.session() as g:
        if kind in FOLLOWER_KINDS:
            rows = g.execute(
                select(RemoteActor.domain, func.coalesce(RemoteActor.shared_inbox, RemoteActor.inbox))
                .join(RemoteFollower, RemoteFollower.remote_id == RemoteActor.id)
                .where(RemoteFollower.user_id == actor_id,
                       RemoteFollower.state == FollowStatus.ACTIVE)  # fmt: skip
                .distinct()
            ).all()
        else:
            rows = g.execute(
                select(RemoteActor.domain, RemoteActor.inbox).where(RemoteActor.id == target_id)
            ).all()
        states = dict(g.execute(select(Instance.domain, Instance.state)).all())
    open_mode = fed.settings.federation_mode == "open"
    out = []
    for domain, inbox in rows:
        state = states.get(domain)
        if state == InstanceState.BLOCKED or (not open_mode and state != InstanceState.ALLOWED):
            continue
        out.append(inbox)
    return sorted(set(out))


federate_with(_federate)


# --- building what a delivery sends -------------------------------------------------------------


def build_activity(fed: Federation, row: Delivery) -> dict[str, Any]:
    """The activity of a delivery, from the Egress record it carries."""
    data = json.loads(row.record)
    record = schema_named(data["kind"]).model_validate(data["record"]) if data["kind"] else None
    urls, me = fed.urls, fed.urls.actor(row.owner_id)
    act_id = urls.activity(row.activity_id)
    with fed.platform.global_store.session() as g:
        target = g.get(RemoteActor, row.target_id) if row.target_id else None
        if row.kind in ("video", "video_update"):
            assert isinstance(record, PublicVideoRecord)
            return _create_video(fed, record, update=row.kind == "video_update") | {"id": act_id}
        if row.kind == "video_delete":
            assert isinstance(record, VideoWithdrawal)
            return ap.activity("Delete", id=act_id, actor=me,
                               obj={"id": urls.video(record.id), "type": "Tombstone"},
                               to=[ap.PUBLIC], cc=[urls.followers(row.owner_id)])  # fmt: skip
        if row.kind == "profile":
            assert isinstance(record, PublicProfileRecord)
            obj = actor_document(fed, record.user_id)
            obj.pop("@context")
            return ap.activity("Update", id=act_id, actor=me, obj=obj, to=[ap.PUBLIC],
                               cc=[urls.followers(row.owner_id)])  # fmt: skip
        assert target is not None, f"delivery {row.id}: its remote actor is gone"
        if row.kind in ("like", "undo_like"):
            video_id = record.video_id if isinstance(record, NotificationRecord) else record.id  # type: ignore[union-attr]
            assert video_id is not None
            like = ap.activity("Like", id=urls.like(row.owner_id, video_id), actor=me,
                               obj=_object_uri(fed, g, video_id, kind="video"), to=[target.uri])  # fmt: skip
            if row.kind == "like":
                return like
            like.pop("@context")
            return ap.activity("Undo", id=act_id, actor=me, obj=like, to=[target.uri])
        if row.kind == "comment":
            assert isinstance(record, PublicCommentRecord)
            reply_to = _object_uri(fed, g, record.parent_id or record.video_id,
                                   kind="comment" if record.parent_id else "video")  # fmt: skip
            note = ap.note_object(urls, record, in_reply_to=reply_to, to=[target.uri])
            return ap.activity("Create", id=act_id, actor=me, obj=note, to=[ap.PUBLIC],
                               cc=[target.uri], published=record.created_at)  # fmt: skip
        if row.kind == "comment_delete":
            assert isinstance(record, CommentRemoval)
            return ap.activity("Delete", id=act_id, actor=me,
                               obj={"id": urls.comment(record.id), "type": "Tombstone"},
                               to=[ap.PUBLIC], cc=[target.uri])  # fmt: skip
        if row.kind in ("follow", "undo_follow"):
            follow = ap.activity("Follow", id=urls.follow(row.owner_id, target.id), actor=me,
                                 obj=target.uri, to=[target.uri])  # fmt: skip
            if row.kind == "follow":
                return follow
            follow.pop("@context")
            return ap.activity("Undo", id=act_id, actor=me, obj=follow, to=[target.uri])
        if row.kind in ("accept", "reject"):
            follow_obj = {"id": data["follow_uri"], "type": "Follow", "actor": target.uri,
                          "object": me}  # fmt: skip
            return ap.activity("Accept" if row.kind == "accept" else "Reject", id=act_id,
                               actor=me, obj=follow_obj, to=[target.uri])  # fmt: skip
    raise ValueError(f"delivery {row.id}: unknown kind {row.kind!r}")


# --- sending ------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)


def _backoff(settings: Settings, attempts: int) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=settings.federation_retry_seconds * 2 ** max(0, attempts - 1)))


def post_signed(fed: Federation, user_id: str, inbox: str, body: bytes) -> httpx.Response:
    key = actor_key(fed.platform, user_id)
    headers = sign_request("POST", inbox, body, key_id=fed.urls.key(user_id), private_pem=key.private_pem)
    headers["Content-Type"] = ap.ACTIVITY_JSON
    headers["Accept"] = ap.ACTIVITY_JSON
    return fed.client.post(inbox, content=body, headers=headers)


def deliver_due(fed: Federation, region: str, *, limit: int = 500, due_only: bool = True) -> DeliveryReport:
    """Send the region's due deliveries (each once, in parallel), delete what an inbox took,
    back off what failed, park what failed `federation_max_tries` times."""
    store = fed.platform.region(region)
    report = DeliveryReport()
    with store.session() as s:
        q = select(Delivery).where(Delivery.state == DeliveryState.PENDING)
        if due_only:
            q = q.where(Delivery.next_attempt_at <= utcnow())
        rows = list(s.scalars(q.order_by(Delivery.created_at).limit(limit)))
    if not rows:
        return report
    bodies: dict[str, bytes] = {}
    results: dict[str, str | None] = {}

    def send(row: Delivery) -> None:
        try:
            check_fetchable(fed, row.inbox)
            check_instance(fed, domain_of(row.inbox))
            if row.activity_id not in bodies:
                bodies[row.activity_id] = json.dumps(build_activity(fed, row)).encode()
            r = post_signed(fed, row.owner_id, row.inbox, bodies[row.activity_id])
            results[row.id] = None if 200 <= r.status_code < 300 else f"{row.inbox} answered {r.status_code}: {r.text[:200]}"
        except Exception as e:
            results[row.id] = f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(rows))) as pool:
        list(pool.map(send, rows))
    done = [i for i, err in results.items() if err is None]
    failed = {i: err for i, err in results.items() if err is not None}
    report.sent, report.failed = len(done), len(failed)
    report.errors = list(failed.values())
    with store.transaction() as s:
        if done:
            s.execute(delete(Delivery).where(Delivery.id.in_(done)))
        for row in s.scalars(select(Delivery).where(Delivery.id.in_(list(failed)))):
            row.attempts += 1
            row.last_error = (failed[row.id] or "")[:2000]
            row.next_attempt_at = utcnow() + _backoff(fed.settings, row.attempts)
            if row.attempts >= fed.settings.federation_max_tries:
                row.state = DeliveryState.PARKED
                report.parked += 1
                log.error("delivery %s to %s parked: %s", row.id, row.inbox, row.last_error)
    return report


def deliver_all(
    fed: Federation, *, due_only: bool = True, regions: Iterable[str] | None = None
) -> DeliveryReport:
    total = DeliveryReport()
    for region in regions or list(fed.platform.regions):
        while True:
            r = deliver_due(fed, region, due_only=due_only)
            total.sent += r.sent
            total.failed += r.failed
            total.parked += r.parked
            total.errors += r.errors
            if r.sent == 0:
                break
    return total


def run_deliverer(
    fed: Federation, stop: threading.Event, *, interval: float = 1.0,
    regions: Iterable[str] | None = None,
) -> None:  # fmt: skip
    """The delivery loop of a serving process (every region) or a region worker (its own)."""
    names = list(regions) if regions is not None else None
    while not stop.is_set():
        try:
            deliver_all(fed, regions=names)
        except Exception:
            log.exception("federation: delivery pass failed; trying again")
        stop.wait(interval)


@dataclass(frozen=True)
class DeliveryInfo:
    id: str
    region: str
    owner_id: str
    kind: str
    inbox: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime


def list_deliveries(platform: Platform, *, parked_only: bool = False) -> list[DeliveryInfo]:
    out = []
    for name, store in platform.regions.items():
        with store.session() as s:
            q = select(Delivery)
            if parked_only:
                q = q.where(Delivery.state == DeliveryState.PARKED)
            for d in s.scalars(q.order_by(Delivery.created_at)):
                out.append(DeliveryInfo(d.id, name, d.owner_id, d.kind, d.inbox, d.state,
                                        d.attempts, d.last_error, d.next_attempt_at))  # fmt: skip
    return out


def do_retry_deliveries(platform: Platform, ids: Iterable[str] | None = None) -> int:
    n = 0
    for store in platform.regions.values():
        with store.transaction() as s:
            q = update(Delivery).where(Delivery.state == DeliveryState.PARKED)
            if ids is not None:
                q = q.where(Delivery.id.in_(list(ids)))
            result = s.execute(q.values(state=DeliveryState.PENDING, attempts=0, next_attempt_at=utcnow()))
            n += int(getattr(result, "rowcount", 0) or 0)
    return n


# --- local users and remote actors --------------------------------------------------------------


def do_follow_remote(platform: Platform, user: CurrentUser, account: str) -> str:
    """Follow a remote account: the follow is the user's, in their region, `pending` until the
    remote server accepts; the Follow activity is delivered from there."""
    fed = require(platform)
    remote = resolve_account(fed, account)
    try:
        with action(platform, user.region, user.user_id) as (s, _outbox):
            s.add(Follow(owner_id=user.user_id, followee_id=remote.id, state=FollowStatus.PENDING))
            s.flush()
            _queue(fed, s, user.user_id, "follow", NotificationRecord(
                recipient_id=remote.id, kind="follow", actor_id=user.user_id,
                actor_handle=user.handle), target_id=remote.id)  # fmt: skip
    except IntegrityError:
        pass  # already following or asked
    return remote.acct


def do_unfollow_remote(platform: Platform, user: CurrentUser, account: str) -> None:
    fed = require(platform)
    remote = resolve_account(fed, account)
    with action(platform, user.region, user.user_id) as (s, outbox):
        end_follow(s, outbox, user.user_id, remote.id)
        _queue(fed, s, user.user_id, "undo_follow", NotificationRecord(
            recipient_id=remote.id, kind="follow", actor_id=user.user_id,
            actor_handle=user.handle), target_id=remote.id)  # fmt: skip


def remote_media(platform: Platform, video_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """The media links of remote videos held in the catalog."""
    ids = list(video_ids)
    if not ids:
        return {}
    with platform.global_store.session() as g:
        rows = list(g.scalars(select(RemoteObject).where(RemoteObject.id.in_(ids))))
    return {
        r.id: {k: v for k, v in (("hls", r.hls_url), ("mp4", r.mp4_url), ("poster", r.poster_url),
                                 ("page", r.page_url)) if v}  # fmt: skip
        for r in rows
    }


# --- the inbox ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    actor: RemoteActor
    activity: dict[str, Any]


def check_inbox(fed: Federation, request: SignedRequest, *, user_id: str | None) -> str:
    """Verify and handle one inbound activity. Everything is checked before anything is
    stored: the signature (401: missing, bad, stale), the instance (403), the signer being the
    activity's actor (403). A replay of an activity already handled changes nothing."""
    if user_id is not None:
        local_actor(fed.platform, user_id)
    sig = parse_signature(request, max_skew_s=fed.settings.federation_signature_skew_seconds)
    try:
        activity = json.loads(request.body)
    except ValueError:
        raise InvalidInput("The activity is not JSON.", code="bad_json") from None
    if not isinstance(activity, dict) or not isinstance(activity.get("id"), str):
        raise InvalidInput("An activity needs an id.", code="bad_activity")
    key_owner = sig.key_id.split("#", 1)[0]
    check_instance(fed, domain_of(key_owner))
    actor = _verified_actor(fed, sig, key_owner)
    if ap.first_id(activity.get("actor")) != actor.uri:
        raise WrongActor("The activity's actor is not the one who signed it.")
    if domain_of(activity["id"]) != actor.domain:
        raise WrongActor("The activity's id is not on its actor's server.")
    key = hashlib.sha256(activity["id"].encode()).hexdigest()
    with fed.platform.global_store.session() as g:
        if g.get(InboundActivity, key) is not None:
            return "duplicate"
    result = _handle(fed, actor, activity)
    try:
        with fed.platform.global_store.transaction() as g:
            g.add(InboundActivity(id_sha256=key))
    except IntegrityError:
        return "duplicate"
    return result


def _verified_actor(fed: Federation, sig: Any, key_owner: str) -> RemoteActor:
    """The signer, with the signature checked against its cached key, or (unknown signer, or a
    key that changed) against its freshly fetched one. The actor is cached only once its
    signature verified."""
    with fed.platform.global_store.session() as g:
        cached = g.scalar(select(RemoteActor).where(
            (RemoteActor.key_id == sig.key_id) | (RemoteActor.uri == key_owner)))  # fmt: skip
    if cached is not None:
        try:
            sig.verify(cached.public_pem)
            return cached
        except SignatureRefused:
            pass
    try:
        doc = ap.parse_actor(fetch_json(fed, key_owner))
    except (RemoteUnreachable, ap.Unparseable, InvalidInput) as e:
        raise SignatureRefused(f"The signer's key could not be fetched: {e}") from None
    if doc.key_id != sig.key_id or doc.uri != key_owner:
        raise SignatureRefused("The signer's actor does not publish this key.")
    sig.verify(doc.public_pem)
    with fed.platform.global_store.transaction() as g:
        return _store_actor(g, doc, local_id=cached.id if cached is not None else None)


def _local_id(fed: Federation, uri: str | None, kind: str) -> str | None:
    """The local id in one of this server's URLs (`/ap/<kind>/<id>`), or None."""
    if not uri:
        return None
    prefix = f"{fed.urls.base}/ap/{kind}/"
    if uri.startswith(prefix):
        rest = uri[len(prefix):].split("/", 1)[0]
        return rest or None
    return None


def _handle(fed: Federation, actor: RemoteActor, activity: dict[str, Any]) -> str:
    kinds = ap.types_of(activity)
    obj = activity.get("object")
    if "Follow" in kinds:
        return _on_follow(fed, actor, activity)
    if "Undo" in kinds:
        inner = obj if isinstance(obj, dict) else {}
        inner_kinds = ap.types_of(inner)
        if ap.first_id(inner.get("actor")) not in (None, actor.uri):
            raise WrongActor("An actor may only undo its own activities.")
        if "Follow" in inner_kinds:
            return _on_unfollow(fed, actor, inner)
        if "Like" in inner_kinds:
            return _on_unlike(fed, actor, inner)
        return "ignored"
    if "Accept" in kinds or "Reject" in kinds:
        return _on_answer(fed, actor, obj, accepted="Accept" in kinds)
    if "Create" in kinds or "Update" in kinds:
        if not isinstance(obj, dict):
            return "ignored"
        if ap.is_video(obj):
            return _on_video(fed, actor, obj)
        if ap.first_id(obj.get("attributedTo")) not in (None, actor.uri):
            raise WrongActor("An actor may only create its own objects.")
        if "Note" in ap.types_of(obj):
            return _on_note(fed, actor, obj)
        if ap.types_of(obj) & {"Person", "Service", "Group", "Application"}:
            remote_actor(fed, actor.uri, refresh=True)
            return "actor updated"
        return "ignored"
    if "Delete" in kinds:
        return _on_delete(fed, actor, ap.first_id(obj))
    if "Like" in kinds:
        return _on_like(fed, actor, activity)
    if "Announce" in kinds:
        video_id = _local_id(fed, ap.first_id(obj), "videos")
        if video_id is None:
            return "ignored"
        with fed.platform.global_store.transaction() as g:
            if g.get(PublishedVideo, video_id) is not None:
                egress(g, CountChange(target="video", id=video_id, field=CounterKind.SHARE_COUNT, delta=1))
        return "announce"
    if "Move" in kinds:
        remote_actor(fed, actor.uri, refresh=True)
        return "moved"
    return "ignored"


def _notify_local(fed: Federation, local: LocalActor, actor: RemoteActor, kind: str, **fields: Any) -> None:
    """A notification in the local user's home region (public fields only)."""
    with fed.platform.region(local.region).transaction() as r:
        egress(r, NotificationRecord(recipient_id=local.user_id, kind=kind, actor_id=actor.id,
                                     actor_handle=actor.acct[:30], **fields))  # fmt: skip


def _blocked_by(fed: Federation, local: LocalActor, remote_id: str) -> bool:
    with fed.platform.region(local.region).session() as s:
        return s.scalar(select(Block.id).where(Block.owner_id == local.user_id,
                                              Block.target_id == remote_id)) is not None  # fmt: skip


def _on_follow(fed: Federation, actor: RemoteActor, activity: dict[str, Any]) -> str:
    user_id = _local_id(fed, ap.first_id(activity.get("object")), "actors")
    if user_id is None:
        return "ignored"
    local = local_actor(fed.platform, user_id)
    follow_uri = activity["id"]
    if _blocked_by(fed, local, actor.id):
        _send_answer(fed, local, actor, follow_uri, accept=False)
        return "rejected"
    private = _is_private(fed.platform, local)
    state = FollowStatus.PENDING if private else FollowStatus.ACTIVE
    with fed.platform.global_store.transaction() as g:
        row = g.scalar(select(RemoteFollower).where(RemoteFollower.remote_id == actor.id,
                                                   RemoteFollower.user_id == local.user_id))  # fmt: skip
        if row is not None:
            row.follow_uri = follow_uri
            state = FollowStatus(row.state)
            new = False
        else:
            g.add(RemoteFollower(remote_id=actor.id, user_id=local.user_id, state=state,
                                 follow_uri=follow_uri))  # fmt: skip
            new = True
            if state == FollowStatus.ACTIVE:
                _count_follow(g, follower=actor.id, followee=local.user_id, delta=1)
    if state == FollowStatus.ACTIVE:
        _send_answer(fed, local, actor, follow_uri, accept=True)
    if new:
        _notify_local(fed, local, actor, "follow" if state == FollowStatus.ACTIVE else "follow_request")
    return f"follow {state}"


def _count_follow(g: Session, *, follower: str, followee: str, delta: int) -> None:
    egress(g, CountChange(target="user", id=followee, field=CounterKind.FOLLOWERS, delta=delta))
    egress(g, CountChange(target="user", id=follower, field=CounterKind.FOLLOWING, delta=delta))


def _send_answer(fed: Federation, local: LocalActor, actor: RemoteActor, follow_uri: str, *, accept: bool) -> None:
    """Queue the local user's Accept or Reject of a remote follow, in their region."""
    with fed.platform.region(local.region).transaction() as r:
        _queue(fed, r, local.user_id, "accept" if accept else "reject", NotificationRecord(
            recipient_id=actor.id, kind="follow", actor_id=local.user_id,
            actor_handle=local.handle), target_id=actor.id,
            extra={"follow_uri": follow_uri})  # fmt: skip


def do_answer_remote_request(platform: Platform, user: CurrentUser, account: str, *, approve: bool) -> None:
    """A private account answers a remote follow request."""
    fed = require(platform)
    with platform.global_store.session() as g:
        row = g.execute(
            select(RemoteFollower, RemoteActor).join(RemoteActor, RemoteActor.id == RemoteFollower.remote_id)
            .where(RemoteFollower.user_id == user.user_id, RemoteActor.acct == account,
                   RemoteFollower.state == FollowStatus.PENDING)  # fmt: skip
        ).first()
    if row is None:
        raise NotFound("No such follow request.", code="no_request")
    follower, actor = row
    local = local_actor(platform, user.user_id)
    with platform.global_store.transaction() as g:
        f = g.get(RemoteFollower, follower.id)
        assert f is not None
        if approve:
            f.state = FollowStatus.ACTIVE
            _count_follow(g, follower=actor.id, followee=user.user_id, delta=1)
        else:
            g.delete(f)
    _send_answer(fed, local, actor, follower.follow_uri, accept=approve)


def _on_unfollow(fed: Federation, actor: RemoteActor, follow: dict[str, Any]) -> str:
    user_id = _local_id(fed, ap.first_id(follow.get("object")), "actors")
    if user_id is None:
        return "ignored"
    with fed.platform.global_store.transaction() as g:
        row = g.scalar(select(RemoteFollower).where(RemoteFollower.remote_id == actor.id,
                                                   RemoteFollower.user_id == user_id))  # fmt: skip
        if row is None:
            return "not following"
        if row.state == FollowStatus.ACTIVE:
            _count_follow(g, follower=actor.id, followee=user_id, delta=-1)
        g.delete(row)
    return "unfollowed"


def _on_answer(fed: Federation, actor: RemoteActor, obj: Any, *, accepted: bool) -> str:
    """The remote actor accepted or rejected a local user's follow (the Follow is ours: its
    id names the follower and the followee)."""
    follow_uri = ap.first_id(obj)
    prefix = f"{fed.urls.base}/ap/follows/"
    if not follow_uri or not follow_uri.startswith(prefix):
        return "ignored"
    follower_id, _, followee_id = follow_uri[len(prefix):].partition("/")
    if followee_id != actor.id:
        raise WrongActor("Only the followed actor may answer a follow.")
    local = local_actor(fed.platform, follower_id)
    with action(fed.platform, local.region, local.user_id) as (s, outbox):
        row = s.scalar(select(Follow).where(Follow.owner_id == local.user_id,
                                            Follow.followee_id == actor.id))  # fmt: skip
        if row is None:
            return "no follow"
        if not accepted:
            end_follow(s, outbox, local.user_id, actor.id)
            return "follow rejected"
        if row.state == FollowStatus.ACTIVE:
            return "already active"
        row.state = FollowStatus.ACTIVE
        outbox.emit(CountChange(target="user", id=actor.id, field=CounterKind.FOLLOWERS, delta=1))
        outbox.emit(CountChange(target="user", id=local.user_id, field=CounterKind.FOLLOWING, delta=1))
    return "follow accepted"


def _on_video(fed: Federation, actor: RemoteActor, obj: dict[str, Any]) -> str:
    video = ap.parse_video(obj)
    if video.attributed_to != actor.uri or domain_of(video.uri) != actor.domain:
        raise WrongActor("An actor may only publish its own videos.")
    caption = video.content or video.name
    with fed.platform.global_store.transaction() as g:
        known = g.scalar(select(RemoteObject).where(RemoteObject.uri == video.uri))
        video_id = known.id if known is not None else new_id()
        egress(g, PublicVideoRecord(
            id=video_id, creator_id=actor.id, creator_handle=actor.acct[:30],
            region=REMOTE_REGION, caption=caption[:2200],
            hashtags=video.hashtags, mentions=[], visibility="public",
            allow_comments=video.comments_enabled, allow_sound_reuse=False, sound_id=None,
            duration_s=video.duration_s or 1.0, width=video.width, height=video.height,
            published_at=video.published_at,
        ))  # fmt: skip
        if known is None:
            g.add(RemoteObject(id=video_id, uri=video.uri, kind="video", actor_id=actor.id))
            g.flush()
            known = g.get(RemoteObject, video_id)
            assert known is not None
        known.hls_url, known.mp4_url = video.hls_url, video.mp4_url
        known.poster_url, known.page_url = video.poster_url, video.page_url
    return "video stored"


def _on_note(fed: Federation, actor: RemoteActor, obj: dict[str, Any]) -> str:
    """A remote comment in reply to a video (local or remote) or to a comment."""
    uri = obj.get("id")
    reply_to = ap.first_id(obj.get("inReplyTo"))
    if not isinstance(uri, str) or reply_to is None or domain_of(uri) != actor.domain:
        return "ignored"
    text = ap.text_of(obj.get("content"))[:500]
    if not text:
        return "ignored"
    with fed.platform.global_store.session() as g:
        if g.scalar(select(RemoteObject.id).where(RemoteObject.uri == uri)) is not None:
            return "known"
        video_id = _local_id(fed, reply_to, "videos")
        parent_id = None
        if video_id is None:
            parent_id = _local_id(fed, reply_to, "comments")
            if parent_id is None:
                target = g.scalar(select(RemoteObject).where(RemoteObject.uri == reply_to))
                if target is None:
                    return "ignored"
                if target.kind == "video":
                    video_id = target.id
                else:
                    parent_id = target.id
            if parent_id is not None:
                parent = g.get(PublicComment, parent_id)
                if parent is None:
                    return "ignored"
                video_id, parent_id = parent.video_id, parent.parent_id or parent.id
        video = g.get(PublishedVideo, video_id)
        if video is None or not video.allow_comments or video.visibility != "public":
            return "ignored"
        creator = (video.creator_id, video.region)
    comment_id = new_id()
    with fed.platform.global_store.transaction() as g:
        egress(g, PublicCommentRecord(
            id=comment_id, video_id=video_id, author_id=actor.id, author_handle=actor.acct[:30],
            parent_id=parent_id, text=text, created_at=ap.parse_datetime(obj.get("published")),
        ))  # fmt: skip
        g.add(RemoteObject(id=comment_id, uri=uri, kind="comment", actor_id=actor.id))
    if creator[1] != REMOTE_REGION:
        local = local_actor(fed.platform, creator[0])
        if not _blocked_by(fed, local, actor.id):
            _notify_local(fed, local, actor, "comment", video_id=video_id, comment_id=comment_id,
                          snippet=text[:200])  # fmt: skip
    return "comment stored"


def _on_like(fed: Federation, actor: RemoteActor, activity: dict[str, Any]) -> str:
    video_id = _local_id(fed, ap.first_id(activity.get("object")), "videos")
    if video_id is None:
        return "ignored"
    with fed.platform.global_store.transaction() as g:
        video = g.get(PublishedVideo, video_id)
        if video is None or video.visibility != "public":
            return "ignored"
        if g.scalar(select(RemoteLike.id).where(RemoteLike.remote_id == actor.id,
                                                RemoteLike.video_id == video_id)) is not None:  # fmt: skip
            return "already liked"
        g.add(RemoteLike(remote_id=actor.id, video_id=video_id, like_uri=activity["id"]))
        egress(g, CountChange(target="video", id=video_id, field=CounterKind.LIKE_COUNT, delta=1))
        egress(g, CountChange(target="user", id=video.creator_id, field=CounterKind.LIKES_RECEIVED, delta=1))
        creator = video.creator_id
    local = local_actor(fed.platform, creator)
    if not _blocked_by(fed, local, actor.id):
        _notify_local(fed, local, actor, "like", video_id=video_id)
    return "like stored"


def _on_unlike(fed: Federation, actor: RemoteActor, like: dict[str, Any]) -> str:
    video_id = _local_id(fed, ap.first_id(like.get("object")), "videos")
    if video_id is None:
        return "ignored"
    with fed.platform.global_store.transaction() as g:
        row = g.scalar(select(RemoteLike).where(RemoteLike.remote_id == actor.id,
                                                RemoteLike.video_id == video_id))  # fmt: skip
        if row is None:
            return "not liked"
        g.delete(row)
        video = g.get(PublishedVideo, video_id)
        if video is not None:
            egress(g, CountChange(target="video", id=video_id, field=CounterKind.LIKE_COUNT, delta=-1))
            egress(g, CountChange(target="user", id=video.creator_id, field=CounterKind.LIKES_RECEIVED, delta=-1))
    return "like undone"


def _on_delete(fed: Federation, actor: RemoteActor, uri: str | None) -> str:
    if uri is None:
        return "ignored"
    if uri == actor.uri:
        with fed.platform.global_store.transaction() as g:
            g.execute(delete(PublishedVideo).where(PublishedVideo.creator_id == actor.id))
            g.execute(delete(DirectoryEntry).where(DirectoryEntry.user_id == actor.id))
        return "actor deleted"
    with fed.platform.global_store.transaction() as g:
        obj = g.scalar(select(RemoteObject).where(RemoteObject.uri == uri))
        if obj is None:
            return "unknown"
        if obj.actor_id != actor.id:
            raise WrongActor("An actor may only delete its own objects.")
        if obj.kind == "video":
            egress(g, VideoWithdrawal(id=obj.id))
        else:
            comment = g.get(PublicComment, obj.id)
            if comment is not None:
                egress(g, CommentRemoval(id=obj.id, video_id=comment.video_id))
        g.delete(obj)
    return "deleted"



# --- after a hand-over: follows across the new boundary become federated follows ---------------


def _adopt_actor(fed: Federation, uri: str, *, local_id: str) -> RemoteActor:
    """The remote actor at `uri`, cached under `local_id` when it is new here (the id a
    hand-over kept, so rows naming that user keep naming them)."""
    check_instance(fed, domain_of(uri))
    doc = ap.parse_actor(fetch_json(fed, uri))
    with fed.platform.global_store.transaction() as g:
        known = g.scalar(select(RemoteActor).where(RemoteActor.uri == doc.uri))
        entry = g.get(DirectoryEntry, local_id)
        free = known is None and (entry is None or entry.state == REMOTE)
        return _store_actor(g, doc, local_id=local_id if free else None)


def _refollow(fed: Federation, region: str, follower_id: str, old_id: str, remote: RemoteActor) -> None:
    """`follower_id`'s follow of `old_id` now names the remote actor, and is delivered."""
    with fed.platform.global_store.session() as g:
        handle = g.scalar(select(DirectoryEntry.handle).where(DirectoryEntry.user_id == follower_id))
    with fed.platform.region(region).transaction() as s:
        if remote.id != old_id:
            s.execute(update(Follow).where(Follow.owner_id == follower_id,
                                           Follow.followee_id == old_id)
                      .values(followee_id=remote.id))  # fmt: skip
        _queue(fed, s, follower_id, "follow", NotificationRecord(
            recipient_id=remote.id, kind="follow", actor_id=follower_id,
            actor_handle=handle or "user"), target_id=remote.id)  # fmt: skip


def _followers_of(fed: Federation, followees: Iterable[str], *, owners: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """(region, follower, followee) of the follows of `followees` held in this deployment."""
    wanted, only = list(followees), list(owners) if owners is not None else None
    out: list[tuple[str, str, str]] = []
    for name, store in fed.platform.regions.items():
        with store.session() as s:
            q = select(Follow.owner_id, Follow.followee_id).where(Follow.followee_id.in_(wanted))
            if only is not None:
                q = q.where(Follow.owner_id.in_(only))
            out += [(name, o, f) for o, f in s.execute(q)]
    return out


def do_relink_imported(platform: Platform, *, source_url: str | None, users: list[str]) -> int:
    """At the recipient of a hand-over: what the handed-over users followed at the source
    (users who stayed there) becomes a federated follow of those users' actors at the source.
    Returns the follows re-established; one that cannot be (the source unreachable) is logged."""
    fed = federation_of(platform)
    if fed is None or not source_url or not users:
        return 0
    homes = platform.directory.homes(users)
    follows: list[tuple[str, str, str]] = []
    for name, store in platform.regions.items():
        mine = [u for u in users if u in homes and homes[u].region == name]
        if not mine:
            continue
        with store.session() as s:
            follows += [(name, o, f) for o, f in s.execute(
                select(Follow.owner_id, Follow.followee_id).where(Follow.owner_id.in_(mine)))]  # fmt: skip
    here = platform.directory.homes(f for _r, _o, f in follows)
    return _relink(fed, [(r, o, f) for r, o, f in follows if f not in here or here[f].state == REMOTE],
                   f"{source_url.rstrip('/')}/ap/actors/{{}}")  # fmt: skip


def do_relink_finished(platform: Platform, *, users: list[str], recipient_url: str) -> int:
    """At the source of a finished hand-over: the follows that users who stayed held of users
    who left become federated follows of their actors at the recipient."""
    fed = federation_of(platform)
    if fed is None or not users:
        return 0
    return _relink(fed, _followers_of(fed, users), f"{recipient_url.rstrip('/')}/ap/actors/{{}}")


def _relink(fed: Federation, follows: list[tuple[str, str, str]], template: str) -> int:
    actors: dict[str, RemoteActor | None] = {}
    n = 0
    for region, follower, followee in follows:
        if followee not in actors:
            try:
                actors[followee] = _adopt_actor(fed, template.format(followee), local_id=followee)
            except (ReelmError, ap.Unparseable) as e:
                log.warning("federation: %s not re-linked: %s", followee, e)
                actors[followee] = None
        remote = actors[followee]
        if remote is not None:
            _refollow(fed, region, follower, followee, remote)
            n += 1
    return n
