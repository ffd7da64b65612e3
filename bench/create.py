"""Create's editing tools: the transcode with text overlays against bare ffmpeg doing the same
filtergraph, and the time from the end of a 15 s in-browser recording to a playable video.

**Text overlays.** The input and edit of bench/transcode.py (1080x1920 H.264/AAC clip, filled to
9:16, the `vintage` look at 70, a demo song mixed at 80 against the clip's sound), here 10 s
long, plus three text overlays in three of the bundled fonts, each on screen for part of the
video. reelm's run is `reelm.media.transcode.transcode` in a fresh process (both renditions,
HLS + MP4 + poster). The baseline is the `ffmpeg` program of `imageio-ffmpeg` running the same
command as bench/transcode.py's baseline with the same three text pictures (drawn by reelm's
`draw_text`, saved as PNG) laid on by the same `overlay` filters with the same `enable`
expressions after the look. Rounds alternate which runs first; the ratio is the median of the
rounds' ratios. Both outputs are checked: every text is in the decoded pictures of both at its
time and absent outside it.

**Record to playable.** `reelm init` and uvicorn (bench/_http.py) with jobs run in the request,
Chromium with its fake camera and microphone (`--use-fake-device-for-media-stream`), a user
signed up in the page: *Record with your camera*, three parts of 5 s held on the record button
with a song picked, then *Next*. Timed from *Next* to the editor (the WebM assembled, uploaded
by tus, probed, encrypted) and from *Post* to the video's page (transcoded, published, opened).
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import Context, Outcome, fmt_ratio
from bench.transcode import (
    Run,
    edit,
    ffmpeg_exe,
    load,
    make_inputs,
    run_ffmpeg,
    run_reelm,
)
from reelm.config import Settings

TITLE = "Create tools: text overlays against bare ffmpeg, record-to-playable"
TARGET_RATIO = 1.15
TEXTS: list[dict[str, Any]] = [
    # start and end as fractions of the video
    {"text": "Day one", "font": "bold", "color": "#ffffff", "y": 0.15, "size": 96, "end_s": 0.4},
    {"text": "at the skatepark", "font": "serif", "color": "#ffd400", "y": 0.5, "start_s": 0.2},
    {"text": "#reelm", "font": "typewriter", "color": "#00e0ff", "y": 0.85, "start_s": 0.5},
]


def texts_for(seconds: float) -> list[dict[str, Any]]:
    return [
        {k: v * seconds if k.endswith("_s") else v for k, v in text.items()} for text in TEXTS
    ]


def text_pictures(folder: Path, seconds: float) -> list[tuple[Path, int, int, str]]:
    """The overlays exactly as reelm draws them, as PNG files with their place and timing."""
    from reelm.media.overlays import draw_text, enable_expression
    from reelm.media.schemas import TextOverlay

    out = []
    for number, fields in enumerate(texts_for(seconds)):
        drawn = draw_text(TextOverlay(**fields), width=720, height=1280, end_s=seconds)
        path = folder / f"text{number}.png"
        drawn.frame.to_image().save(path)
        out.append((path, drawn.x, drawn.y, enable_expression(drawn.start_s, drawn.end_s)))
    return out


def text_shown(mp4: Path, seconds: float) -> list[str]:
    """Problems with where the texts are in the pictures: each must change its band of the
    frame while it shows, compared with the same time in a run without texts, and nowhere
    else. Checked on the top rung's MP4 at the middle of each text's time and outside it."""
    import av

    problems = []
    with av.open(str(mp4)) as container:
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for fields in texts_for(seconds):
        start, end = fields.get("start_s", 0.0), fields.get("end_s", seconds)
        row = int(fields["y"] * 1280)
        band = slice(max(0, row - 20), row + 20)
        inside = pictures[int((start + end) / 2 * 30)][band]
        colour = [int(fields["color"][i : i + 2], 16) for i in (1, 3, 5)]
        close = (abs(inside.astype(int) - colour).sum(axis=2) < 90).mean()
        if close < 0.02:
            problems.append(f"text {fields['text']!r} is not in {mp4.parent.name} at its time")
        if start > 0.5:
            before = pictures[int((start - 0.5) * 30)][band]
            if (abs(before.astype(int) - colour).sum(axis=2) < 90).mean() > close / 3:
                problems.append(f"text {fields['text']!r} shows before its start")
    return problems


@dataclass
class Recording:
    parts_s: float
    duration_s: float
    upload_s: float
    post_s: float
    size_bytes: int

    @property
    def total_s(self) -> float:
        return self.upload_s + self.post_s


def record_to_playable(ctx: Context, parts: int, part_s: float) -> Recording:
    from playwright.sync_api import expect, sync_playwright

    from bench._http import serve
    from reelm.residency.service import open_platform

    data_dir = ctx.subdir("record-server")
    settings = {
        "REELM_JOBS_IMMEDIATE": "true",
        "REELM_ARGON2_TIME_COST": "1",
        "REELM_ARGON2_MEMORY_KIB": "64",
        "REELM_ARGON2_PARALLELISM": "1",
    }
    with serve(ctx.python, data_dir, settings) as server:
        base = f"http://{server.host}:{server.port}"
        _add_song(data_dir, ctx)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                ],
            )
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{base}/signup")
            page.get_by_label("Where do you live?").select_option("US")
            page.get_by_label("Birth date").fill("1999-04-05")
            page.get_by_label("Handle").fill("bench_cam")
            page.get_by_label("Email").fill("bench_cam@example.org")
            page.get_by_label("Password").fill("bench password 123")
            page.get_by_role("button", name="Sign up").click()
            page.wait_for_url(f"{base}/")
            page.goto(f"{base}/create")
            page.get_by_role("button", name="Record with your camera").click()
            expect(page.locator("#camera")).to_have_js_property("readyState", 4, timeout=30_000)
            page.locator("#record-song").select_option(index=1)
            hold = page.locator("#record-hold")
            for _ in range(parts):
                hold.dispatch_event("pointerdown")
                page.wait_for_timeout(part_s * 1000)
                hold.dispatch_event("pointerup")
                page.wait_for_timeout(300)
            started = time.perf_counter()
            with page.expect_request(lambda r: r.method == "POST" and "/api/v1/uploads" in r.url):
                page.get_by_role("button", name="Next").click()
            expect(page.locator("#editor")).to_be_visible(timeout=300_000)
            uploaded = time.perf_counter()
            duration = float(page.locator("#trim-end").get_attribute("max") or 0)
            page.get_by_role("button", name="Post").click()
            page.wait_for_url(f"{base}/v/**", timeout=600_000)
            page.locator("video.player").first.wait_for(state="attached")
            ready = time.perf_counter()
            browser.close()
    platform = open_platform(Settings(data_dir=data_dir))
    try:
        store = platform.region("us")
        size = max(store.blobs.size(k) for k in store.blobs.keys("") if "/uploads/" in k)
    finally:
        platform.close()
    return Recording(parts * part_s, duration, uploaded - started, ready - uploaded, size)


def _add_song(data_dir: Path, ctx: Context) -> None:
    from reelm.media.synth import make_tone
    from reelm.residency.service import open_platform
    from reelm.sounds.service import do_import_song

    platform = open_platform(Settings(data_dir=data_dir))
    try:
        tone = make_tone(ctx.subdir("song") / "tone.m4a", 30.0, 440.0)
        do_import_song(
            platform, path=tone, title="Bench Loop", artist="Bench", genre="Test", territories="*"
        )
    finally:
        platform.close()


def run(ctx: Context) -> Outcome:
    seconds = 4.0 if ctx.quick else 10.0
    rounds = 1 if ctx.quick else 3
    failures: list[str] = []
    media = ctx.subdir("media")
    ctx.log(f"making a {seconds:g} s 1080x1920 clip, a demo song and the text pictures …")
    clip, song = make_inputs(media, seconds)
    texts = text_pictures(media, seconds)
    the_edit = {**edit(seconds), "texts": texts_for(seconds)}
    exe = ffmpeg_exe()
    reelm_out, bare_out = ctx.scratch / "reelm-out", ctx.scratch / "ffmpeg-out"
    pairs: list[tuple[Run, Run]] = []
    for number in range(rounds):
        pair: dict[str, Run] = {}
        for who in ("reelm", "ffmpeg") if number % 2 == 0 else ("ffmpeg", "reelm"):
            if who == "reelm":
                pair[who] = run_reelm(ctx, clip, song, seconds, reelm_out, the_edit)
            else:
                pair[who] = run_ffmpeg(exe, clip, song, seconds, bare_out, texts)
            ctx.log(f"  round {number + 1} {who:6} {pair[who].wall:6.2f} s  load {load()}")
        pairs.append((pair["reelm"], pair["ffmpeg"]))
    failures += text_shown(reelm_out / "published" / "video.mp4", seconds)
    failures += text_shown(bare_out / "video.mp4", seconds)
    ratios = [r.wall / b.wall for r, b in pairs]
    ratio = statistics.median(ratios)
    if ratio > TARGET_RATIO:
        failures.append(f"text-overlay transcode is {ratio:.2f}x bare ffmpeg (target ≤ 1.15x)")

    recording: Recording | None = None
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        parts, part_s = (2, 2.0) if ctx.quick else (3, 5.0)
        ctx.log(f"recording {parts} parts of {part_s:g} s in Chromium with its fake camera …")
        recording = record_to_playable(ctx, parts, part_s)
        ctx.log(
            f"  recorded {recording.duration_s:.1f} s: upload {recording.upload_s:.1f} s, "
            f"post to playable {recording.post_s:.1f} s"
        )
    else:
        failures.append("Chromium is missing (`make browser`): record-to-playable not measured")

    rows = "\n".join(
        f"| {n} | {r.wall:.2f} | {b.wall:.2f} | {fmt_ratio(r.wall / b.wall)} | {r.load} / {b.load} |"
        for n, (r, b) in enumerate(pairs, start=1)
    )
    md = f"""**Text overlays.** {seconds:g} s of 1080x1920 to the 720p + 480p ladder with the look, the
song and {len(TEXTS)} texts ({", ".join(t["font"] for t in TEXTS)}); wall-clock seconds:

| round | reelm | bare ffmpeg | ÷ ffmpeg | load (reelm / ffmpeg) |
| ---: | ---: | ---: | ---: | --- |
{rows}

**Median: reelm takes {fmt_ratio(ratio)} the time of bare ffmpeg** doing the same filtergraph
(target ≤ {TARGET_RATIO}x). Both outputs were decoded: each text is in the pictures while it
shows and not before.
"""
    if recording is not None:
        md += f"""
**Record to playable.** {recording.parts_s:g} s recorded in the page in parts (the file:
{recording.duration_s:.1f} s of WebM, {recording.size_bytes / 1e6:.1f} MB encrypted), then:

| step | seconds |
| --- | ---: |
| *Next* → editor open (WebM assembled, tus upload, probe, encryption) | {recording.upload_s:.1f} |
| *Post* → the video's page (transcode of both rungs, publication) | {recording.post_s:.1f} |
| **record to playable** | **{recording.total_s:.1f}** |

The transcode dominates: see the ratio above and bench/transcode.py for its cost per second of
video on this machine.
"""
    return Outcome(md, failures)
