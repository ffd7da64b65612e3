"""What a region's audit log records: typed entry kinds, their canonical bytes, and pseudonyms.

An entry never names a person. A user appears only as a `Pseudonym`: an HMAC of the user id under
the region's pseudonym secret, so the public log cannot be joined to the Directory (which maps user
ids to public handles), while the operator, and the user shown their own pseudonym, can find a
user's entries. Every other text field is an identifier (`Ident`: no spaces, no '@'), so free text,
handles written as sentences and e-mail addresses cannot slip in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_serializer

PSEUDONYM_PREFIX = "p_"
Pseudonym = Annotated[str, StringConstraints(pattern=r"^p_[0-9a-f]{32}$")]
"""`p_` and 32 hex digits: never the shape of a user id (32 bare hex digits)."""

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/+#-]{0,127}$")]
"""An identifier: a staff id, a policy id, a ticket, a category. No spaces, no '@'."""

Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest in lower-case hex (policy content hashes, manifest roots, key digests)."""

ENTRY_VERSION = 1


def pseudonym(secret: bytes, region: str, user_id: str) -> str:
    """The user's pseudonym in `region`'s log: HMAC-SHA256 keyed by the region secret, 128 bits.

    The region name is in the message too, so two regions that shared a secret by mistake
    still give a user different pseudonyms.
    """
    if len(secret) < 32:
        raise ValueError("a pseudonym secret is at least 32 bytes")
    message = b"reelm-audit-pseudonym/v1\x00" + region.encode() + b"\x00" + user_id.encode()
    return PSEUDONYM_PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only: the same entry always has the same bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


class Entry(BaseModel):
    """Base of every entry kind. `time` is when it was recorded (UTC, set by the log)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    time: datetime | None = None

    @field_serializer("time")
    def _time(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def to_bytes(self) -> bytes:
        """The leaf data: `{"v": 1, "kind": ..., "time": ..., <fields>}` as canonical JSON."""
        body = self.model_dump(mode="json", exclude_none=True)
        if "time" not in body:
            raise ValueError("an entry gets its time when it is recorded")
        return canonical_json({"v": ENTRY_VERSION, "kind": self.kind, **body})


class StaffAccess(Entry):
    """A staff member's attempt to read a user's protected data, allowed or denied, with the ids
    of the policies that decided it. Both outcomes are logged: a denial is evidence too."""

    kind: ClassVar[str] = "staff_access"
    staff_id: Ident
    operator: Ident
    subject: Pseudonym
    data_category: Ident
    purpose: Ident
    ticket: Ident | None = None
    decision: Literal["allow", "deny"]
    policy_ids: list[Ident] = Field(default_factory=list)


class PolicyChange(Entry):
    """A residency or staff-access policy became active in this region."""

    kind: ClassVar[str] = "policy_change"
    policy: Literal["residency", "staff_access"]
    version: Ident
    content_hash: Hash
    previous_hash: Hash | None = None
    actor: Ident


class DataExport(Entry):
    """A user's download-my-data archive, through its life: requested, ready, downloaded."""

    kind: ClassVar[str] = "data_export"
    subject: Pseudonym
    export_id: Ident
    event: Literal["requested", "ready", "downloaded", "expired"]
    archive_sha256: Hash | None = None


class AccountDeletion(Entry):
    """An account deletion: scheduled (grace period starts), cancelled, or completed (hard delete)."""

    kind: ClassVar[str] = "account_deletion"
    subject: Pseudonym
    event: Literal["scheduled", "cancelled", "completed"]
    effective_at: datetime | None = None

    @field_serializer("effective_at")
    def _effective_at(self, value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KeyDestruction(Entry):
    """A user's data key destroyed: every copy of their encrypted data is unreadable from now on."""

    kind: ClassVar[str] = "key_destruction"
    subject: Pseudonym
    key_digest: Hash
    reason: Literal["account_deletion", "carve_out", "operator"]


class CarveOutMove(Entry):
    """A user's data moved between regions by a carve-out, with the manifest root both sides
    computed over the user's records. Logged in both regions (`direction` says which side)."""

    kind: ClassVar[str] = "carve_out_move"
    subject: Pseudonym
    run_id: Ident
    direction: Literal["out", "in"]
    from_region: Ident
    to_region: Ident
    manifest_root: Hash
    policy_hash: Hash


class ReportReceived(Entry):
    """A report's public part reached the region of the content's owner: which kind of content,
    under which rule, into which case. No reporter, no content id: the transparency report's
    count of reports is a count of these."""

    kind: ClassVar[str] = "report_received"
    case: Ident
    target_kind: Literal["video", "comment", "account"]
    reason: Ident


ENTRY_KINDS: dict[str, type[Entry]] = {
    cls.kind: cls
    for cls in (
        StaffAccess,
        PolicyChange,
        DataExport,
        AccountDeletion,
        KeyDestruction,
        CarveOutMove,
        ReportReceived,
    )
}


def parse_entry(data: bytes) -> Entry:
    """Read an entry back from its leaf bytes (for display; verification hashes the bytes)."""
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("v") != ENTRY_VERSION:
        raise ValueError("not a version 1 audit entry")
    kind = raw.pop("kind", None)
    raw.pop("v")
    cls = ENTRY_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown audit entry kind {kind!r}")
    entry: Entry = TypeAdapter(cls).validate_python(raw)
    return entry
