"""Carrying a carve-out run through its batches: mark, fence, copy, verify, flip, drain, clean,
log (the steps, and what the journal records of them, are described in `service.py`)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, select, text, update

from reelm.audit.entries import CarveOutMove, Entry, KeyDestruction
from reelm.audit.log import region_log
from reelm.carveout import models as m
from reelm.carveout.copy import copy_blobs, copy_rows, delete_blobs, delete_rows
from reelm.carveout.crash import crash_point
from reelm.carveout.journal import (
    DIRECTORY,
    JOURNAL,
    PRE_FLIP,
    RUNS,
    Progress,
    RunOptions,
    RunResult,
    journal_insert,
    logged_carveout_entries,
    repoint_tables,
    run_dir,
)
from reelm.carveout.logbook import record_batch
from reelm.carveout.manifest import Manifest, compute_manifests, tune_sqlite
from reelm.carveout.plan import select_users
from reelm.config import Settings
from reelm.db import utcnow
from reelm.residency.models import ACTIVE, MOVING
from reelm.residency.policy import ResidencyPolicy
from reelm.residency.service import do_activate_policy, write_policy_file
from reelm.residency.store import Platform, RegionStore
from reelm.sql import among, bind, chunks


class Mover:
    """Carries one run to its end; see the module docstring for the steps."""

    def __init__(
        self,
        platform: Platform,
        settings: Settings,
        run_id: str,
        policy: ResidencyPolicy,
        options: RunOptions,
    ) -> None:
        self.platform = platform
        self.settings = settings
        self.run_id = run_id
        self.policy = policy
        self.options = options
        self.logs = {name: region_log(settings, store) for name, store in platform.regions.items()}
        self.cleanup: deque[tuple[list[str], str, str, float]] = deque()
        self.helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carveout-manifest")
        # Cleaning the source (deletes, key destruction, logs) runs beside the next batch's copy:
        # the copy writes the target's database, the cleaner the source's.
        self.cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carveout-clean")
        self.cleaning: deque[Future[None]] = deque()
        self._lock = threading.Lock()
        self._pg = platform.global_store.engine.dialect.name == "postgresql"
        self._chunk = 5000 if self._pg else 1000
        """Users per statement on the global database (Directory, journal, catalog)."""
        self.resumed: set[str] = set()  # flipped before this process: maybe logged already
        with platform.global_store.session() as g:
            run = g.get(m.CarveOutRun, run_id)
            assert run is not None
            self.run_started = run.started_at
        self._logged: dict[str, set[tuple[str, str]]] | None = None
        self.started = time.monotonic()
        self.paced = 0
        self.progress = Progress(total=0)
        self.failed: list[str] = []
        self._after: dict[tuple[str, str], str] = {}
        self.timings: dict[str, float] = defaultdict(float)
        """Seconds spent per phase (the benchmark reports them)."""

    # --- the journal -------------------------------------------------------------------------

    def _steps(self) -> dict[str, int]:
        from sqlalchemy import func

        with self._global() as g:
            return {
                step: int(n)
                for step, n in g.execute(
                    select(JOURNAL.c.step, func.count())
                    .where(JOURNAL.c.run_id == self.run_id)
                    .group_by(JOURNAL.c.step)
                )
            }

    def _set_step(self, g: Any, users: Sequence[str], step: str) -> None:
        for chunk in chunks(users, self._chunk):
            g.execute(
                update(JOURNAL)
                .where(
                    JOURNAL.c.run_id == self.run_id, among(JOURNAL.c.user_id, chunk, pg=self._pg)
                )
                .values(step=step, updated_at=utcnow())
            )

    def _set_roots(self, g: Connection, roots: dict[str, str]) -> None:
        """Journal `verified` with each user's manifest root: one statement per thousand users
        (PostgreSQL: the pairs as two arrays; SQLite, in process: an executemany)."""
        pairs = sorted(roots.items())
        for chunk in chunks(pairs, 1000):
            if g.dialect.name == "postgresql":
                g.execute(
                    text(
                        "UPDATE carveout_users AS j SET step = :step, manifest_root = v.root, "
                        "updated_at = :now FROM unnest(CAST(:users AS text[]), "
                        "CAST(:roots AS text[])) AS v(user_id, root) "
                        "WHERE j.run_id = :run AND j.user_id = v.user_id"
                    ),
                    {"step": m.VERIFIED, "now": utcnow(), "run": self.run_id,
                     "users": [u for u, _ in chunk], "roots": [r for _, r in chunk]},
                )  # fmt: skip
                continue
            g.execute(
                update(JOURNAL)
                .where(JOURNAL.c.run_id == self.run_id, JOURNAL.c.user_id == bind("u"))
                .values(step=m.VERIFIED, manifest_root=bind("root"), updated_at=utcnow()),
                [{"u": u, "root": r} for u, r in chunk],
            )

    def _step(self, users: Sequence[str], step: str) -> None:
        with self._global(begin=True) as g:
            self._set_step(g, users, step)

    def _next_batch(self) -> tuple[str, str, list[tuple[str, str]]] | None:
        """The next users to move, in user id order per (from, to) pair: a key-set page (after
        the last user taken), so each page costs the same however far the run is."""
        with self._global() as g:
            first = g.execute(
                select(JOURNAL.c.from_region, JOURNAL.c.to_region)
                .where(JOURNAL.c.run_id == self.run_id, JOURNAL.c.step.in_(PRE_FLIP))
                .limit(1)
            ).first()
            if first is None:
                return None
            src, dst = first
            for after in (self._after.get((src, dst), ""), ""):
                rows = g.execute(
                    select(JOURNAL.c.user_id, JOURNAL.c.step)
                    .where(
                        JOURNAL.c.run_id == self.run_id,
                        JOURNAL.c.user_id > after,
                        JOURNAL.c.step.in_(PRE_FLIP),
                        JOURNAL.c.from_region == src,
                        JOURNAL.c.to_region == dst,
                    )
                    .order_by(JOURNAL.c.user_id)
                    .limit(self.options.batch)
                ).all()
                if rows:
                    break
        self._after[(src, dst)] = rows[-1][0] if rows else ""
        return src, dst, [(u, s) for u, s in rows]

    @contextmanager
    def _global(self, *, begin: bool = False) -> Iterator[Connection]:
        """A connection to the global database (in a transaction with `begin`), with the page
        cache a run over many users needs on SQLite."""
        engine = self.platform.global_store.engine
        with engine.begin() if begin else engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                tune_sqlite(conn.connection.driver_connection)
            yield conn

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.timings[phase] += time.perf_counter() - t0

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            self.helper.shutdown(wait=True)
            if self.cleaner is not None:
                self.cleaner.shutdown(wait=True)

    def _run(self) -> RunResult:
        steps = self._steps()
        self.progress = Progress(
            total=sum(steps.values()),
            done=steps.get(m.FINISHED, 0),
            failed=steps.get(m.USER_FAILED, 0),
            skipped=steps.get(m.SKIPPED, 0),
        )
        self._report_progress()
        self._queue_resumed()
        while True:
            while (batch := self._next_batch()) is not None:
                src, dst, users = batch
                self._move(src, dst, users)
                self._clean_due()
                self._pace()
            self._clean_due(wait=True)
            if not self._add_stragglers():
                break
        return self._finish()

    def _report_progress(self) -> None:
        if self.options.progress is not None:
            self.options.progress(self.progress)

    def _pace(self) -> None:
        rate = self.options.rate
        if not rate:
            return
        ahead = self.paced / rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)

    def _queue_resumed(self) -> None:
        """Users a killed run left flipped or cleaned: finish them first (after the drain)."""
        with self._global() as g:
            rows = g.execute(
                select(JOURNAL.c.user_id, JOURNAL.c.from_region, JOURNAL.c.to_region)
                .where(JOURNAL.c.run_id == self.run_id, JOURNAL.c.step.in_((m.FLIPPED, m.CLEANED)))
                .order_by(JOURNAL.c.from_region, JOURNAL.c.to_region, JOURNAL.c.user_id)
            ).all()
        groups: dict[tuple[str, str], list[str]] = {}
        for user, src, dst in rows:
            groups.setdefault((src, dst), []).append(user)
        now = time.monotonic()
        self.resumed.update(u for users in groups.values() for u in users)
        for (src, dst), users in groups.items():
            for batch in chunks(users, self.options.batch):
                self.cleanup.append((batch, src, dst, now))

    def _add_stragglers(self) -> bool:
        """Users who need moving but are not in the journal yet (signed up under the old policy
        while the run went on): add them; True if there were any."""
        moves = select_users(self.platform, policy=self.policy, since=self.run_started)
        with self._global(begin=True) as g:
            known = {
                u
                for (u,) in g.execute(
                    select(JOURNAL.c.user_id).where(JOURNAL.c.run_id == self.run_id)
                )
            }
            new = {u: (f, t) for u, (f, t, _j) in moves.items() if u not in known}
            if new:
                journal_insert(g, self.run_id, new, utcnow())
        self.progress.total += len(new)
        return bool(new)

    # --- one batch: mark, copy, verify, flip --------------------------------------------------

    def _move(self, src: str, dst: str, batch: list[tuple[str, str]]) -> None:
        source, target = self.platform.regions[src], self.platform.regions[dst]
        users = [u for u, _ in batch]
        at = dict(batch)
        planned = [u for u in users if at[u] == m.PLANNED]
        if planned:
            with self._timed("mark"):
                marked, gone = self._mark(planned, src, dst)
            for u in marked:
                at[u] = m.MARKED
            for u in gone:
                at[u] = m.SKIPPED
            self.progress.skipped += len(gone)
            crash_point("batch.marked")
        marked = [u for u in users if at[u] == m.MARKED]
        if marked:
            with self._timed("fence"):
                source.wait_for_writers()
            crash_point("batch.fenced")
            # the source's manifests (its data is frozen now) are computed beside the copy
            mine = self.helper.submit(self._manifests, source, marked, "source")
            self._copy(source, target, marked)
            # not journaled: after a crash the copy is simply made again (it replaces)
            for u in marked:
                at[u] = m.COPIED
            crash_point("batch.copied")
            roots, failed = self._verify(source, target, marked, mine=mine)
            with self._timed("journal"), self._global(begin=True) as g:
                self._set_roots(g, roots)
            for u in marked:
                at[u] = m.VERIFIED if u in roots else m.USER_FAILED
            if failed:
                self._give_back(source, target, failed)
            crash_point("batch.verified")
        verified = [u for u in users if at[u] == m.VERIFIED]
        if verified:
            with self._timed("flip"):
                flipped = self._flip(src, dst, verified)
            crash_point("batch.flipped")
            kept = set(flipped)
            gone = [u for u in verified if u not in kept]
            if gone:  # deleted while moving: drop the copy in T too
                self._drop_copy(target, gone)
                self._step(gone, m.SKIPPED)
                self.progress.skipped += len(gone)
            if flipped:
                self.cleanup.append((flipped, src, dst, time.monotonic()))
        self.paced += len(users)

    def _mark(self, users: list[str], src: str, dst: str) -> tuple[list[str], list[str]]:
        """Directory `moving` for those still active in `src` (or already moving there from a
        killed attempt); the others left the plan (deleted meanwhile): skipped."""
        d = DIRECTORY.c
        with self._global(begin=True) as g:
            marked: set[str] = set()
            for chunk in chunks(users, self._chunk):
                marked.update(
                    g.execute(
                        update(DIRECTORY)
                        .where(
                            among(d.user_id, chunk, pg=self._pg),
                            d.home_region == src,
                            (d.state == ACTIVE) | ((d.state == MOVING) & (d.moving_to == dst)),
                        )
                        .values(state=MOVING, moving_to=dst)
                        .returning(d.user_id)
                    ).scalars()
                )
            ok = [u for u in users if u in marked]
            gone = [u for u in users if u not in marked]
            # `marked` is not journaled: marking is idempotent (a user already moving to `dst`
            # counts as marked), so a killed run finds them through the Directory
            self._set_step(g, gone, m.SKIPPED)
        return ok, gone

    def _copy(self, source: RegionStore, target: RegionStore, users: list[str]) -> None:
        with self._timed("copy rows"):
            self.progress.rows += copy_rows(source, target, users, crash=crash_point)
        crash_point("copy.rows_done")
        with self._timed("copy blobs"):
            blobs, size = copy_blobs(source, target, users, crash=crash_point)
        self.progress.blobs += blobs
        self.progress.bytes += size
        crash_point("copy.blobs_done")
        with self._timed("re-wrap keys"):
            keys = source.keys.data_keys(users)
            if keys:
                target.keys.put_data_keys(keys)
        crash_point("copy.keys_done")

    def _manifests(self, store: RegionStore, users: list[str], side: str) -> dict[str, Manifest]:
        with self._timed(f"manifests ({side})"):
            out = compute_manifests(store, users)
        crash_point(f"verify.{side}_done")
        return out

    def _verify(
        self,
        source: RegionStore,
        target: RegionStore,
        users: list[str],
        *,
        mine: Future[dict[str, Manifest]],
    ) -> tuple[dict[str, str], list[str]]:
        """Manifests on both sides (the source's computed in the helper thread, independently);
        users whose copies differ are copied again once."""
        theirs = self._manifests(target, users, "target")
        bad = [u for u in users if not _same(mine.result()[u], theirs[u])]
        mine_now = dict(mine.result())
        if bad:
            self._copy(source, target, bad)
            mine_now.update(compute_manifests(source, bad))
            theirs.update(compute_manifests(target, bad))
            bad = [u for u in bad if not _same(mine_now[u], theirs[u])]
        return {u: mine_now[u].root for u in users if u not in bad}, bad

    def _give_back(self, source: RegionStore, target: RegionStore, users: list[str]) -> None:
        """Copies that would not verify: drop them and leave the users where they were."""
        self._drop_copy(target, users)
        d = DIRECTORY.c
        with self._global(begin=True) as g:
            g.execute(
                update(DIRECTORY)
                .where(
                    among(d.user_id, users, pg=self._pg),
                    d.state == MOVING,
                    d.home_region == source.name,
                )
                .values(state=ACTIVE, moving_to=None)
            )
            self._set_step(g, users, m.USER_FAILED)
        self.failed += users
        self.progress.failed += len(users)

    def _drop_copy(self, target: RegionStore, users: list[str]) -> None:
        delete_rows(target, users)
        delete_blobs(target, users)
        target.keys.destroy_data_keys(users)

    def _flip(self, src: str, dst: str, users: list[str]) -> list[str]:
        """Directory home `dst`, catalog rows repointed, journal `flipped`: one transaction."""
        d = DIRECTORY.c
        with self._global(begin=True) as g:
            flipped: set[str] = set()
            for chunk in chunks(users, self._chunk):
                flipped.update(
                    g.execute(
                        update(DIRECTORY)
                        .where(
                            among(d.user_id, chunk, pg=self._pg),
                            d.state == MOVING,
                            d.home_region == src,
                            d.moving_to == dst,
                        )
                        .values(home_region=dst, state=ACTIVE, moving_to=None)
                        .returning(d.user_id)
                    ).scalars()
                )
                for table, column in repoint_tables():
                    g.execute(
                        update(table)
                        .where(among(table.c[column], chunk, pg=self._pg), table.c.region == src)
                        .values(region=dst)
                    )
            ok = [u for u in users if u in flipped]
            self._set_step(g, ok, m.FLIPPED)
        return ok

    # --- after the drain: clean the source, log both sides ------------------------------------

    def _clean_due(self, *, wait: bool = False) -> None:
        """Clean the flipped batches whose drain is over, merged per (from, to) into groups of
        `clean_batch` users (deleting many users' rows in one transaction rewrites each page of
        the source tables once, not once per batch); with `wait`, everything left."""
        size = self.options.clean_batch or self.options.batch
        due: dict[tuple[str, str], list[str]] = defaultdict(list)
        while self.cleanup:
            users, src, dst, flipped_at = self.cleanup[0]
            left = flipped_at + self.options.drain - time.monotonic()
            if left > 0:
                if not wait:
                    break
                time.sleep(left)
            self.cleanup.popleft()
            due[(src, dst)] += users
        for (src, dst), users in due.items():
            if len(users) < size and not wait:  # not enough yet: back in line, in order
                self.cleanup.appendleft((users, src, dst, 0.0))
                continue
            if self.cleaner is None:
                self._clean(users, src, dst)
            else:
                self.cleaning.append(self.cleaner.submit(self._clean, users, src, dst))
        # at most two groups wait for the cleaner; an error in it stops the run here
        while self.cleaning and (wait or len(self.cleaning) > 2 or self.cleaning[0].done()):
            self.cleaning.popleft().result()

    def _clean(self, users: list[str], src: str, dst: str) -> None:
        source, target = self.platform.regions[src], self.platform.regions[dst]
        with self._global() as g:
            at = dict(
                g.execute(
                    select(JOURNAL.c.user_id, JOURNAL.c.step).where(
                        JOURNAL.c.run_id == self.run_id,
                        among(JOURNAL.c.user_id, users, pg=self._pg),
                    )
                ).all()
            )
        flipped = [u for u in users if at.get(u) == m.FLIPPED]
        if flipped:
            with self._timed("delete rows at source"):
                delete_rows(source, flipped, crash=crash_point)
            crash_point("clean.rows_done")
            with self._timed("delete blobs at source"):
                delete_blobs(source, flipped, crash=crash_point)
            crash_point("clean.blobs_done")
            with self._timed("destroy keys at source"):
                source.keys.destroy_data_keys(flipped)
            crash_point("clean.keys_done")
            # not journaled: after a crash the (idempotent) clean runs again, and the log
            # entries a killed attempt appended are found in the log, not appended twice
            crash_point("batch.cleaned")
        cleaned = [u for u in users if at.get(u) in (m.FLIPPED, m.CLEANED)]
        if cleaned:
            with self._timed("audit logs"):
                self._log(source, target, cleaned)
            with self._timed("journal"):
                self._step(cleaned, m.FINISHED)
            with self._lock:
                self.progress.done += len(cleaned)
                self._report_progress()
            crash_point("batch.done")

    def _already_logged(self, region: str) -> set[tuple[str, str]]:
        """(kind/direction, subject) of the carve-out entries this run appended to `region`'s log
        before a crash: read once, from the checkpoint the run started at."""
        if self._logged is None:
            self._logged = {}
            with self.platform.global_store.session() as g:
                run = g.get(m.CarveOutRun, self.run_id)
                assert run is not None
                before = json.loads(run.detail)["checkpoints_before"]
            from reelm.audit.checkpoint import parse_checkpoint, parse_note

            for name, log in self.logs.items():
                start = parse_checkpoint(parse_note(before[name]).text).size
                self._logged[name] = logged_carveout_entries(log, start, self.run_id)
        return self._logged[region]

    def _log(self, source: RegionStore, target: RegionStore, users: list[str]) -> None:
        with self._global() as g:
            roots = dict(
                g.execute(
                    select(JOURNAL.c.user_id, JOURNAL.c.manifest_root).where(
                        JOURNAL.c.run_id == self.run_id,
                        among(JOURNAL.c.user_id, users, pg=self._pg),
                    )
                ).all()
            )
        digests = {
            u: hashlib.sha256(k).hexdigest() for u, k in target.keys.data_keys(users).items()
        }
        resumed = [u for u in users if u in self.resumed]
        out_log, in_log = self.logs[source.name], self.logs[target.name]
        skip_out = self._already_logged(source.name) if resumed else set()
        skip_in = self._already_logged(target.name) if resumed else set()
        out_entries: list[tuple[type[Entry], dict[str, Any]]] = []
        in_entries: list[tuple[type[Entry], dict[str, Any]]] = []
        for u in users:
            common = {
                "run_id": self.run_id,
                "from_region": source.name,
                "to_region": target.name,
                "manifest_root": roots[u],
                "policy_hash": self.policy.content_hash,
            }
            s_out, s_in = out_log.pseudonym(u), in_log.pseudonym(u)
            if ("out", s_out) not in skip_out:
                out_entries.append((CarveOutMove, {"subject": s_out, "direction": "out", **common}))
            if u in digests and ("key", s_out) not in skip_out:
                out_entries.append(
                    (
                        KeyDestruction,
                        {"subject": s_out, "key_digest": digests[u], "reason": "carve_out"},
                    )
                )
            if ("in", s_in) not in skip_in:
                in_entries.append((CarveOutMove, {"subject": s_in, "direction": "in", **common}))
        record_batch(out_log, out_entries)
        crash_point("log.source_done")
        record_batch(in_log, in_entries)
        crash_point("log.target_done")

    # --- the end -------------------------------------------------------------------------------

    def _finish(self) -> RunResult:
        steps = self._steps()
        failed = steps.get(m.USER_FAILED, 0)
        report: str | None = None
        if not failed:
            crash_point("run.before_activate")
            with self._timed("activate policy"):
                do_activate_policy(self.platform, self.policy, actor="reelm-carveout")
            write_policy_file(
                self.settings,
                policy=str(run_dir(self.settings, self.run_id) / "policy.toml"),
                force=True,
            )
            self.platform.policy = self.policy
            crash_point("run.activated")
        from reelm.carveout.report import do_report

        with self._timed("verify and report"):
            report = do_report(self.platform, self.settings, self.run_id)
        with self._global(begin=True) as g:
            g.execute(
                update(RUNS)
                .where(RUNS.c.id == self.run_id)
                .values(state=m.FAILED if failed else m.DONE, finished_at=utcnow(), report=report)
            )
        crash_point("run.reported")
        with self._global() as g:
            failed_users = [
                u
                for (u,) in g.execute(
                    select(JOURNAL.c.user_id).where(
                        JOURNAL.c.run_id == self.run_id, JOURNAL.c.step == m.USER_FAILED
                    )
                )
            ]
        return RunResult(
            run_id=self.run_id,
            moved=steps.get(m.FINISHED, 0),
            failed=failed_users,
            skipped=steps.get(m.SKIPPED, 0),
            seconds=time.monotonic() - self.started,
            report=report,
            counts=steps,
            timings=dict(self.timings),
        )


def _same(a: Manifest, b: Manifest) -> bool:
    return a.root == b.root
