"""The carve-out journal (global database): runs and, per user, the step each move reached.

User ids and region names only: the journal is as non-personal as the Directory it sits beside.
Every step of a move is recorded after its effect is durable, and every effect is idempotent, so a
run killed at any point is finished by running it again (see docs/carveout.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelm.accounts.models import LoginSession
from reelm.db import ID, GlobalModel, UTCDateTime, new_id, utcnow
from reelm.media.models import Video

# Run kinds and states.
MOVE, EXPORT, IMPORT = "move", "export", "import"
RUNNING, EXPORTED, DONE, FAILED, ABORTED = "running", "exported", "done", "failed", "aborted"

# Steps of one user's move, in order. `skipped`: the user left the plan (deleted, moved by
# something else) before being marked; `failed`: the manifests disagreed twice and the user
# was put back where they were.
PLANNED, MARKED, COPIED, VERIFIED, FLIPPED, CLEANED, FINISHED = (
    "planned",
    "marked",
    "copied",
    "verified",
    "flipped",
    "cleaned",
    "done",
)
SKIPPED, USER_FAILED = "skipped", "failed"
STEPS = (PLANNED, MARKED, COPIED, VERIFIED, FLIPPED, CLEANED, FINISHED)
FINAL_STEPS = (FINISHED, SKIPPED, USER_FAILED)


class CarveOutRun(GlobalModel):
    """One carve-out: a move to the regions of a new policy, an export to another operator, or
    an import from one. `detail` is JSON: what the run needs to resume and to report."""

    __tablename__ = "carveout_runs"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=RUNNING, index=True)
    policy_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    previous_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    policy_text: Mapped[str | None] = mapped_column(Text, default=None)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    report: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class CarveOutUser(GlobalModel):
    """One user's move in a run: from where to where, the step reached, the manifest root both
    sides agreed on."""

    __tablename__ = "carveout_users"
    __table_args__ = (Index("ix_carveout_users_run_step", "run_id", "step"),)

    run_id: Mapped[str] = mapped_column(
        ID, ForeignKey("carveout_runs.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    from_region: Mapped[str] = mapped_column(String(32))
    to_region: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(16), default=PLANNED)
    manifest_root: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MovedVideo(GlobalModel):
    """A public video handed over to another operator's deployment: its URLs here answer with a
    permanent redirect to the same path there."""

    __tablename__ = "catalog_moved_videos"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    location: Mapped[str] = mapped_column(String(500))
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# A carve-out deletes a user's rows at the source, children before parents. Deleting a parent row
# makes the database look for children that still refer to it, through the foreign key: without
# an index on the child's column that is a scan of the whole child table per deleted row, so the
# move of many users would take quadratic time. Every foreign key of a region table is indexed
# (tests/carveout/test_schema.py fails for a new one that is not).
Index("ix_sessions_account_id", LoginSession.account_id)
Index("ix_videos_upload_id", Video.upload_id)
