"""Reports. A report commits once, in the reporter's region: their `Report` row, with its
public part (`ReportRecord`) in that region's outbox, which the dispatcher writes into the region
of the user whose content it is, where it is counted into the content's open case.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.db import utcnow
from reelm.effects.service import action
from reelm.errors import CommentNotFound, InvalidInput, RateLimited
from reelm.moderation.models import Report
from reelm.moderation.schemas import ReportCreate, ReportRead, ReportRecord
from reelm.residency.models import REMOTE_REGION
from reelm.residency.store import Platform
from reelm.social.models import PublicComment
from reelm.social.service import Person, access_catalog_video, person_by_handle, person_by_id

REPORT_WINDOW = timedelta(hours=1)


def _reported_owner(platform: Platform, me: Person, body: ReportCreate) -> tuple[str, Person]:
    """(the target's id, the user whose content it is), if the reporter may see it."""
    if body.kind == "video":
        video = access_catalog_video(platform, me, body.target)
        target_id, owner = video.id, Person(video.creator_id, video.creator_handle, video.region)
    elif body.kind == "comment":
        with platform.global_store.session() as g:
            comment = g.get(PublicComment, body.target)
        if comment is None:
            raise CommentNotFound()
        access_catalog_video(platform, me, comment.video_id)
        target_id, owner = comment.id, person_by_id(platform, comment.author_id)
    else:
        owner = person_by_handle(platform, body.target)
        target_id = owner.user_id
    if owner.user_id == me.user_id:
        raise InvalidInput("You cannot report your own content.", code="self_report")
    if owner.region == REMOTE_REGION:
        raise InvalidInput(
            "This comes from another server; report it to that server.", code="remote_content"
        )
    return target_id, owner


def do_report(
    platform: Platform, settings: Settings, user: CurrentUser, body: ReportCreate
) -> ReportRead:
    """File a report. The same user reporting the same thing again counts nothing (the first
    report is answered, `counted` false); more than `reports_per_hour` in an hour are refused."""
    me = Person(user.user_id, user.handle, user.region)
    target_id, owner = _reported_owner(platform, me, body)
    store = platform.region(me.region)
    with store.session() as s:
        earlier = s.scalar(
            select(Report).where(
                Report.owner_id == me.user_id,
                Report.target_kind == body.kind,
                Report.target_id == target_id,
            )
        )
        if earlier is not None:
            return _read(earlier, body.target, counted=False)
        since = utcnow() - REPORT_WINDOW
        recent = s.execute(
            select(func.count(), func.min(Report.created_at)).where(
                Report.owner_id == me.user_id, Report.created_at > since
            )
        ).one()
    if recent[0] >= settings.reports_per_hour:
        wait = int((recent[1] + REPORT_WINDOW - utcnow()).total_seconds()) + 1
        raise RateLimited(
            f"You have sent {settings.reports_per_hour} reports in the last hour; try again later.",
            retry_after=max(1, wait),
        )
    try:
        with action(platform, me.region, me.user_id) as (s, outbox):
            report = Report(
                owner_id=me.user_id,
                target_kind=body.kind,
                target_id=target_id,
                reason=body.reason,
                text=body.text.strip() if body.reason == "other" else "",
            )
            s.add(report)
            s.flush()
            outbox.emit(
                ReportRecord(
                    owner_id=owner.user_id,
                    kind=body.kind,
                    target_id=target_id,
                    reason=body.reason,
                ),
                region=owner.region,
            )
            result = _read(report, body.target, counted=True)
    except IntegrityError:  # the same report at the same moment: the other one counted
        with store.session() as s:
            first = s.scalar(
                select(Report).where(
                    Report.owner_id == me.user_id,
                    Report.target_kind == body.kind,
                    Report.target_id == target_id,
                )
            )
        if first is None:
            raise
        return _read(first, body.target, counted=False)
    return result


def _read(report: Report, target: str, *, counted: bool) -> ReportRead:
    return ReportRead(
        id=report.id,
        kind=report.target_kind,
        target=target,
        reason=report.reason,
        created_at=report.created_at,
        counted=counted,
    )
