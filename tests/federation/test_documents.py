"""The JSON documents reelm emits are valid ActivityStreams 2.0 (expanded with pyld, a JSON-LD
processor, against the AS2 and security contexts read from tests data, never the network: every
term must map to a real vocabulary IRI), and reelm parses sample `Video` objects shaped like
PeerTube's and Loops' (tests/federation/data, sources in its README)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyld import jsonld

from helpers import make_user, make_video
from reelm.config import Settings
from reelm.db import utcnow
from reelm.federation import activities as ap
from reelm.federation import service as fed_service
from reelm.residency.store import Platform
from reelm.social.schemas import PublicCommentRecord

DATA = Path(__file__).parent / "data"
CONTEXTS = {
    "https://www.w3.org/ns/activitystreams": DATA / "activitystreams.jsonld",
    "https://w3id.org/security/v1": DATA / "security-v1.jsonld",
}


def local_loader(url: str, _options: dict[str, Any] | None = None) -> dict[str, Any]:
    """pyld's document loader, offline: the vendored contexts, and nothing else."""
    path = CONTEXTS.get(url.rstrip("/"))
    if path is None:
        raise jsonld.JsonLdError(f"no local copy of {url}", "loading document failed")
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": json.loads(path.read_text())}  # fmt: skip


def undefined_terms(expanded: Any, path: str = "") -> list[str]:
    """Every property of an expanded document that did not map to a vocabulary IRI (the AS2
    context's `@vocab` turns unknown terms into `_:` blank-node properties)."""
    out: list[str] = []
    if isinstance(expanded, list):
        for i, item in enumerate(expanded):
            out += undefined_terms(item, f"{path}[{i}]")
    elif isinstance(expanded, dict):
        for key, value in expanded.items():
            if key.startswith("_:") or not (key.startswith("@") or "://" in key):
                out.append(f"{path}/{key}")
            out += undefined_terms(value, f"{path}/{key}")
    return out


def check_as2(doc: dict[str, Any]) -> list[dict[str, Any]]:
    expanded: list[dict[str, Any]] = jsonld.expand(doc, {"documentLoader": local_loader})
    assert len(expanded) == 1
    assert undefined_terms(expanded) == []
    # nothing dropped: every top-level term of the document is in its expansion
    assert len(expanded[0]) == len([k for k in doc if k != "@context"])
    return expanded


@pytest.fixture
def fed(platform: Platform, settings: Settings) -> Iterator[fed_service.Federation]:
    on = fed_service.enable(platform, settings.model_copy(
        update={"federation_base_url": "https://reelm.example"}))  # fmt: skip
    assert on is not None
    yield on
    fed_service.disable(platform)


AS_NS = "https://www.w3.org/ns/activitystreams#"


def test_actor_outbox_video_and_note_are_activitystreams(
    fed: fed_service.Federation, platform: Platform, settings: Settings
) -> None:
    ava_id, region, _ = make_user(platform, settings, handle="ava")
    video_id = make_video(platform, owner_id=ava_id, region=region, caption="tide pools #ocean")

    actor = check_as2(fed_service.actor_document(fed, ava_id))[0]
    assert actor["@type"] == [f"{AS_NS}Person"]
    assert actor[f"{AS_NS}preferredUsername"] == [{"@value": "ava"}]
    key = actor["https://w3id.org/security#publicKey"][0]
    assert "BEGIN PUBLIC KEY" in key["https://w3id.org/security#publicKeyPem"][0]["@value"]

    video = check_as2(fed_service.video_document(fed, video_id))[0]
    assert video["@type"] == [f"{AS_NS}Video"]
    assert video[f"{AS_NS}duration"][0]["@type"] == "http://www.w3.org/2001/XMLSchema#duration"
    hrefs = {u[f"{AS_NS}mediaType"][0]["@value"] for u in video[f"{AS_NS}url"]}
    assert hrefs == {"text/html", "application/x-mpegURL", "video/mp4"}

    outbox = check_as2(fed_service.outbox_document(fed, ava_id))[0]
    create = outbox[f"{AS_NS}items"][0]["@list"][0]  # orderedItems is as:items as a list
    assert create["@type"] == [f"{AS_NS}Create"]

    comment = PublicCommentRecord(id="c" * 32, video_id=video_id, author_id=ava_id,
                                  author_handle="ava", parent_id=None, text="so clear",
                                  created_at=utcnow())  # fmt: skip
    note = ap.note_object(fed.urls, comment, in_reply_to=fed.urls.video(video_id), to=[])
    expanded = check_as2({"@context": ap.CONTEXT, **note})[0]
    assert expanded["@type"] == [f"{AS_NS}Note"]
    assert expanded[f"{AS_NS}inReplyTo"] == [{"@id": fed.urls.video(video_id)}]


def test_reelm_parses_its_own_and_peertube_and_loops_videos(
    fed: fed_service.Federation, platform: Platform, settings: Settings
) -> None:
    ava_id, region, _ = make_user(platform, settings, handle="ava")
    video_id = make_video(platform, owner_id=ava_id, region=region, caption="tide pools #ocean")
    own = ap.parse_video(fed_service.video_document(fed, video_id))
    assert own.attributed_to == fed.urls.actor(ava_id)
    assert own.hls_url is not None
    assert own.hls_url.endswith("/master.m3u8")
    assert own.hashtags == ["ocean"]
    assert own.duration_s == 10

    peertube = ap.parse_video(json.loads((DATA / "peertube-video.json").read_text()))
    assert peertube.attributed_to == "https://peertube.example/accounts/alice"
    assert peertube.hls_url is not None
    assert peertube.hls_url.endswith("/master.m3u8")
    assert peertube.mp4_url is not None
    assert peertube.mp4_url.endswith("-1080-fragmented.mp4")
    assert (peertube.width, peertube.height) == (1920, 1080)
    assert peertube.poster_url == "https://peertube.example/lazy-static/thumbnails/abc123.jpg"
    assert peertube.duration_s == 930
    assert peertube.hashtags == ["activitypub", "fediverse"]
    assert peertube.page_url == "https://peertube.example/w/kkGMgK9ZtnKfYAgnEtQxbv"
    assert peertube.content == "In this video we explore #activitypub."

    loops_doc = json.loads((DATA / "loops-video.json").read_text())
    assert ap.is_video(loops_doc)
    loops = ap.parse_video(loops_doc)
    assert loops.attributed_to == "https://loops.example/ap/users/42"
    assert loops.mp4_url == "https://loops.example/storage/videos/1234567890.mp4"
    assert loops.poster_url == "https://loops.example/storage/thumbs/1234567890.jpg"
    assert loops.hashtags == ["skate"]
    assert loops.content == "Morning loop #skate"
    # a Note replying to something is a comment, not a video
    assert not ap.is_video({**loops_doc, "inReplyTo": "https://x.example/v/1"})
