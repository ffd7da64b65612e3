"""Where a like's and a comment's time goes, in-process, for whichever reelm is on the path.

Run by `bench/effects.py` as a script in its own process, with PYTHONPATH pointing at the
`src/` of the version to measure (the code of 8ba6790 or of this checkout) and the deployment's
REELM_* settings in the environment; it imports only `reelm`, so the same script measures
both. Argument: a JSON file {"likes": [[token, video_id], ...], "comments": [[token,
video_id], ...], "out": path}. It resolves the sessions first (auth is not measured), then
calls the services one at a time (no HTTP, no competing request) and writes per-call wall
time, CPU time, SQL statements and commits per database to `out`.

With the outbox (the code has `reelm.effects.service`), each action is measured twice over:
the whole call as the endpoint runs it, and then, on fresh pairs, split into the action's own
commit (dispatch held back) and the inline dispatch of its effects (`dispatch(…, emitted=…)`, what
`action` runs right after the commit).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


def main() -> None:
    args = json.loads(Path(sys.argv[1]).read_text())

    from sqlalchemy import event

    import reelm
    from reelm.accounts.service import access_session
    from reelm.config import Settings
    from reelm.residency.service import open_platform
    from reelm.social import service
    from reelm.social.schemas import CommentCreate

    platform = open_platform(Settings())
    statements: Counter[str] = Counter()
    commits: Counter[str] = Counter()
    engines = {"catalog": platform.global_store.engine}
    for name, store in platform.regions.items():  # `_engine` since the store guards it
        engines[name] = getattr(store, "_engine", None) or store.engine
    for name, engine in engines.items():

        def on_execute(*_a: Any, name: str = name, **_k: Any) -> None:
            statements[name] += 1

        def on_commit(*_a: Any, name: str = name, **_k: Any) -> None:
            commits[name] += 1

        event.listen(engine, "before_cursor_execute", on_execute)
        event.listen(engine, "commit", on_commit)

    users: dict[str, Any] = {}

    def user(token: str) -> Any:
        if token not in users:
            users[token] = access_session(platform, token)
        return users[token]

    for token, _ in args["likes"] + args["comments"]:
        user(token)

    def like(pair: list[str]) -> None:
        service.do_like(platform, user(pair[0]), pair[1])

    def comment(pair: list[str]) -> None:
        service.do_comment(platform, user(pair[0]), pair[1], CommentCreate(text="nice one"))

    def measure(fn: Any, pairs: list[list[str]]) -> dict[str, Any]:
        statements.clear()
        commits.clear()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for pair in pairs:
            fn(pair)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        n = max(1, len(pairs))
        return {
            "n": len(pairs),
            "wall_ms": wall / n * 1000,
            "cpu_ms": cpu / n * 1000,
            "statements": {k: v / n for k, v in statements.items()},
            "commits": {k: v / n for k, v in commits.items()},
        }

    out: dict[str, Any] = {"reelm": str(Path(reelm.__file__).resolve().parent)}
    likes, comments = args["likes"], args["comments"]
    split = "split" in args and args["split"]
    half_l, half_c = (len(likes) // 2, len(comments) // 2) if split else (len(likes), len(comments))
    # warm-up: imports, pools, first statements (a few pairs, not measured)
    for pair in likes[:5]:
        like(pair)
    for pair in comments[:5]:
        comment(pair)
    out["like"] = measure(like, likes[5:half_l])
    out["comment"] = measure(comment, comments[5:half_c])
    if split:
        import reelm.effects.service as effects

        held: list[tuple[str, list[str]]] = []
        real = effects.dispatch_soon

        def hold(_platform: Any, region: str, ids: Any) -> None:
            held.append((region, list(ids)))

        for kind, fn, pairs in (("like", like, likes), ("comment", comment, comments)):
            effects.dispatch_soon = hold  # type: ignore[assignment]
            try:
                out[f"{kind} commit only"] = measure(fn, pairs[len(pairs) // 2 :])
            finally:
                effects.dispatch_soon = real  # type: ignore[assignment]
            batches, held[:] = list(held), []
            out[f"{kind} dispatch"] = measure(
                lambda b: real(platform, b[0], b[1]), batches  # type: ignore[misc]
            )
        # what the region workers do within two seconds: cross off what applied (nothing may
        # be left: every effect applied, once)
        for r in platform.regions:
            effects.dispatch_all(platform, r, due_only=False)
        out["outbox_left"] = sum(effects.pending_count(platform, r) for r in platform.regions)
    platform.close()
    Path(args["out"]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
