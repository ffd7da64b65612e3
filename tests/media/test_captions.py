"""Captions: WebVTT read strictly (a file that is not WebVTT is refused, saying where), kept as
plain-text cues fitted to the edited video, published as an HLS subtitles track beside the
renditions and carried by the video's public record."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import make_user, row_count
from reelm.config import Settings
from reelm.errors import InvalidInput
from reelm.media.captions import check_cues, parse_webvtt, to_webvtt
from reelm.media.models import PublishedVideo
from reelm.residency.store import Platform

GOOD = """WEBVTT - made by hand

NOTE a comment that is not shown

1
00:00.000 --> 00:00.900 align:start
<v Ava>Hello <b>there</b> &amp; welcome

00:01.000 --> 00:01.800
second line
of two
"""


def test_webvtt_cues_are_read_with_their_times_and_plain_text() -> None:
    cues = parse_webvtt(GOOD)
    assert [(c.start_s, c.end_s, c.text) for c in cues] == [
        (0.0, 0.9, "Hello there & welcome"),
        (1.0, 1.8, "second line\nof two"),
    ]
    again = parse_webvtt(to_webvtt(cues))
    assert again == cues


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1\n00:00.000 --> 00:01.000\nhi\n", "first line must be “WEBVTT”"),
        ("WEBVTT\n\n00:00.000 -> 00:01.000\nhi\n", "Line 3: the cue timing"),
        ("WEBVTT\n\n00:00.000 --> 00:01\nhi\n", "Line 3: the cue timing"),
        ("WEBVTT\n\n00:02.000 --> 00:01.000\nhi\n", "ends before it starts"),
        ("WEBVTT\n\n1\nhello\n", "Line 4: expected a cue timing"),
        ("WEBVTT\n00:00.000 --> 00:01.000\nhi\n", "blank line must separate"),
        ('{"cues": []}', "not a WebVTT file"),
    ],
)
def test_a_file_that_is_not_valid_webvtt_is_refused_saying_where(text: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_webvtt(text)
    assert caught.value.code == "invalid_webvtt"
    assert words in caught.value.message


def test_cues_outside_the_edited_video_are_refused_and_long_ones_cut_at_its_end() -> None:
    cues = parse_webvtt("WEBVTT\n\n00:00.500 --> 00:09.000\nlong\n")
    (fitted,) = check_cues(cues, duration_s=2.0)
    assert fitted.end_s == 2.0
    with pytest.raises(InvalidInput) as caught:
        check_cues(parse_webvtt("WEBVTT\n\n00:03.000 --> 00:04.000\nlate\n"), duration_s=2.0)
    assert caught.value.code == "captions_out_of_range"


def test_markup_never_reaches_the_published_file() -> None:
    cues = parse_webvtt("WEBVTT\n\n00:00.000 --> 00:01.000\n&lt;script&gt;x&lt;/script&gt;\n")
    assert cues[0].text == "<script>x</script>"
    assert "&lt;script&gt;" in to_webvtt(cues)
    assert "<script>" not in to_webvtt(cues)


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_captions_are_served_as_an_hls_subtitles_track_and_are_public(
    client: TestClient, platform: Platform, settings: Settings, small_clip: Path
) -> None:
    uid, _, token = make_user(platform, settings, handle="cara", jurisdiction="US")
    with small_clip.open("rb") as f:
        up = client.post("/api/v1/uploads/file", headers=h(token), files={"file": ("c.mp4", f)})
    checked = client.post("/api/v1/captions/check", headers=h(token), json={"webvtt": GOOD})
    assert checked.status_code == 200
    assert [c["text"] for c in checked.json()["cues"]][0] == "Hello there & welcome"
    r = client.post(
        "/api/v1/videos",
        headers=h(token),
        json={
            "upload_id": up.json()["id"],
            "edit": {"trim_start_s": 0, "trim_end_s": 2},
            "caption": "with captions",
            "captions_vtt": GOOD,
        },
    )
    assert r.status_code == 202, r.text
    video_id = r.json()["id"]
    public = client.get(f"/api/v1/videos/{video_id}").json()
    assert public["has_captions"] is True
    master = client.get(public["urls"]["hls"]).text
    assert '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs"' in master
    assert 'URI="subs/index.m3u8"' in master
    assert all('SUBTITLES="subs"' in line for line in master.splitlines() if "STREAM-INF" in line)
    base = public["urls"]["hls"].rsplit("/", 1)[0]
    playlist = client.get(f"{base}/subs/index.m3u8")
    assert playlist.status_code == 200
    assert "captions.vtt" in playlist.text
    vtt = client.get(public["urls"]["captions"])
    assert vtt.status_code == 200
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert "immutable" in vtt.headers["cache-control"]
    assert [c.text for c in parse_webvtt(vtt.text)] == [
        "Hello there & welcome",
        "second line\nof two",
    ]
    # the public record carries them into the catalog
    with platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        assert row is not None
        assert parse_webvtt(row.captions_vtt) == parse_webvtt(vtt.text)
    assert uid


def test_invalid_webvtt_is_refused_and_nothing_is_made(
    client: TestClient, platform: Platform, settings: Settings, small_clip: Path
) -> None:
    _, _, token = make_user(platform, settings, handle="dana", jurisdiction="US")
    with small_clip.open("rb") as f:
        up = client.post("/api/v1/uploads/file", headers=h(token), files={"file": ("c.mp4", f)})
    bad = "1\n00:00:00,000 --> 00:00:01,000\nan SRT file\n"
    checked = client.post("/api/v1/captions/check", headers=h(token), json={"webvtt": bad})
    assert checked.status_code == 422
    assert checked.json()["error"]["code"] == "invalid_webvtt"
    r = client.post(
        "/api/v1/videos",
        headers=h(token),
        json={
            "upload_id": up.json()["id"],
            "edit": {"trim_start_s": 0, "trim_end_s": 2},
            "captions_vtt": bad,
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_webvtt"
    assert row_count(platform, "us", "videos") == 0
