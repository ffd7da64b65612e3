"""Staff accounts, second factor, tickets, and the one gated door to users' protected data.

`access_user_data` is the only staff read of protected data. Its order is the invariant: decide
with Cedar, append the decision (allow or deny, with the deciding policy ids) to the audit log of
the region that holds the data and commit it, and only then read and return anything. A read that
could not be logged does not happen.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from reelm.accounts.models import Account, LoginSession
from reelm.accounts.security import hash_password, token_hash, verify_password
from reelm.audit.entries import StaffAccess
from reelm.audit.log import region_log
from reelm.config import Settings
from reelm.db import utcnow
from reelm.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized, UserNotFound
from reelm.residency.models import DirectoryEntry
from reelm.residency.store import Platform, RegionStore
from reelm.staff.access import (
    DATA_CATEGORIES,
    Decision,
    StaffPolicies,
    decide,
    load_staff_policies,
)
from reelm.staff.models import StaffMember, StaffSession, Ticket
from reelm.staff.schemas import (
    AccountData,
    SessionData,
    StaffRead,
    StaffSignedIn,
    TicketRead,
)

STAFF_SESSION_HOURS = 8
STAFF_HANDLE = re.compile(r"^[a-z][a-z0-9_-]{2,39}$")
DEFAULT_DENY = "default-deny"


@dataclass(frozen=True)
class StaffPrincipal:
    id: str
    handle: str
    operator: str


def _totp_key(settings: Settings) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"reelm-staff-totp/v1")
    return AESGCM(hkdf.derive(settings.secret_key.encode()))


def _seal_totp(settings: Settings, staff_id: str, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + _totp_key(settings).encrypt(nonce, secret.encode(), staff_id.encode())


def _open_totp(settings: Settings, staff_id: str, sealed: bytes) -> str:
    return _totp_key(settings).decrypt(sealed[:12], sealed[12:], staff_id.encode()).decode()


@lru_cache(maxsize=16)
def _policies_cached(path: Path | None, mtime: float) -> StaffPolicies:
    return load_staff_policies(path)


def staff_policies(platform: Platform) -> StaffPolicies:
    path = platform.policy.staff_access_file
    mtime = path.stat().st_mtime if path is not None and path.exists() else 0.0
    return _policies_cached(path, mtime)


def do_add_staff(
    platform: Platform, settings: Settings, *, handle: str, operator: str, password: str
) -> tuple[str, str]:
    """Create a staff member; returns (staff id, TOTP provisioning URI) — shown once."""
    if not STAFF_HANDLE.match(handle):
        raise InvalidInput("A staff handle is 3-40 lower-case letters, digits, _ or -.")
    if operator not in platform.policy.operators:
        raise InvalidInput(
            f"Unknown operator {operator!r}; the policy defines {sorted(platform.policy.operators)}.",
            code="unknown_operator",
        )
    if len(password) < 12:
        raise InvalidInput("A staff password has at least 12 characters.", code="weak_password")
    secret = pyotp.random_base32()
    with platform.global_store.transaction() as g:
        if g.scalar(select(StaffMember.id).where(StaffMember.handle == handle)):
            raise Conflict(f"Staff handle {handle!r} exists.", code="staff_exists")
        member = StaffMember(
            handle=handle,
            operator=operator,
            password_hash=hash_password(settings, password),
            totp_secret_ct=b"",
        )
        g.add(member)
        g.flush()
        member.totp_secret_ct = _seal_totp(settings, member.id, secret)
        staff_id = member.id
    uri = pyotp.TOTP(secret).provisioning_uri(name=handle, issuer_name=f"reelm ({operator})")
    return staff_id, uri


def totp_secret(platform: Platform, settings: Settings, handle: str) -> str:
    """The TOTP secret of a staff member (for `reelm demo` and tests; never served over HTTP)."""
    with platform.global_store.session() as g:
        member = g.scalar(select(StaffMember).where(StaffMember.handle == handle))
        if member is None:
            raise NotFound(f"No staff member {handle!r}.")
        return _open_totp(settings, member.id, member.totp_secret_ct)


def check_staff_login(
    platform: Platform, settings: Settings, *, handle: str, password: str, totp: str
) -> StaffSignedIn:
    wrong = Unauthorized("Wrong staff handle, password or code.", code="wrong_credentials")
    with platform.global_store.transaction() as g:
        member = g.scalar(select(StaffMember).where(StaffMember.handle == handle))
        if member is None or not member.active:
            raise wrong
        if not verify_password(settings, member.password_hash, password):
            raise wrong
        if not pyotp.TOTP(_open_totp(settings, member.id, member.totp_secret_ct)).verify(
            totp, valid_window=1
        ):
            raise wrong
        token = f"staff.{secrets.token_urlsafe(32)}"
        now = utcnow()
        g.add(
            StaffSession(
                token_hash=token_hash(token),
                staff_id=member.id,
                created_at=now,
                expires_at=now + timedelta(hours=STAFF_SESSION_HOURS),
            )
        )
        return StaffSignedIn(token=token, operator=member.operator)


def access_staff(platform: Platform, token: str) -> StaffPrincipal:
    if not token.startswith("staff."):
        raise Unauthorized("A staff session is required.", code="not_staff")
    with platform.global_store.session() as g:
        row = g.scalar(select(StaffSession).where(StaffSession.token_hash == token_hash(token)))
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            raise Unauthorized("Staff session unknown, revoked or expired.", code="not_staff")
        member = g.get(StaffMember, row.staff_id)
        if member is None or not member.active:
            raise Unauthorized("Staff account disabled.", code="not_staff")
        return StaffPrincipal(id=member.id, handle=member.handle, operator=member.operator)


def _ticket_read(t: Ticket) -> TicketRead:
    return TicketRead(
        id=t.id,
        operator=t.operator,
        region=t.region,
        purpose=t.purpose,
        state=t.state,
        created_at=t.created_at,
    )


def do_open_ticket(
    platform: Platform, staff: StaffPrincipal, *, region: str, purpose: str
) -> TicketRead:
    platform.region(region)
    with platform.global_store.transaction() as g:
        ticket = Ticket(
            id=f"T-{secrets.token_hex(6)}",
            operator=staff.operator,
            region=region,
            purpose=purpose,
            opened_by=staff.id,
        )
        g.add(ticket)
        g.flush()
        return _ticket_read(ticket)


def do_close_ticket(platform: Platform, staff: StaffPrincipal, *, ticket_id: str) -> TicketRead:
    with platform.global_store.transaction() as g:
        ticket = g.get(Ticket, ticket_id)
        if ticket is None or ticket.operator != staff.operator:
            raise NotFound("No such ticket.", code="ticket_not_found")
        ticket.state = "closed"
        ticket.closed_at = utcnow()
        return _ticket_read(ticket)


def access_user_data(
    platform: Platform,
    settings: Settings,
    staff: StaffPrincipal,
    *,
    handle: str,
    category: str,
    purpose: str,
    ticket_id: str = "",
) -> StaffRead:
    """Read one category of a user's protected data for `staff`, in the order that is the
    invariant (module docstring): decide, log the decision in the data's region, then read.
    `_log_decision` returns once the entry is committed; nothing is read before it."""
    request = _access_request(platform, staff, handle, category, purpose, ticket_id)
    region = request.entry.home_region
    # 1. decide
    decision = _decide(platform, request)
    policy_ids = decision.policy_ids or [DEFAULT_DENY]
    # 2. log it, allowed or denied, in the region that holds the data
    store = platform.region(region)
    index = _log_decision(settings, store, request, allowed=decision.allowed, policy_ids=policy_ids)
    if not decision.allowed:
        raise Forbidden(
            f"Access denied by staff-access policy ({', '.join(policy_ids)}); the attempt is "
            f"logged as entry {index} of region {region}'s audit log.",
            code="access_denied",
        )
    # 3. only then read
    out = StaffRead(
        category=category, audit_region=region, audit_index=index, policy_ids=policy_ids
    )
    _read_category(store, request.entry, category, out)
    return out


@dataclass(frozen=True)
class _AccessRequest:
    staff: StaffPrincipal
    entry: DirectoryEntry
    category: str
    purpose: str
    ticket_id: str
    ticket: Ticket | None


def _access_request(
    platform: Platform,
    staff: StaffPrincipal,
    handle: str,
    category: str,
    purpose: str,
    ticket_id: str,
) -> _AccessRequest:
    """The request with its subject's Directory entry and its ticket (global reads only)."""
    if category not in DATA_CATEGORIES:
        raise InvalidInput(f"Unknown data category {category!r}; use one of {DATA_CATEGORIES}.")
    with platform.global_store.session() as g:
        entry = g.scalar(select(DirectoryEntry).where(DirectoryEntry.handle_key == handle.lower()))
        ticket = g.get(Ticket, ticket_id) if ticket_id else None
    if entry is None:
        raise UserNotFound(handle)
    return _AccessRequest(staff, entry, category, purpose, ticket_id, ticket)


def _decide(platform: Platform, request: _AccessRequest) -> Decision:
    """Cedar's answer for this staff member, this user's data in its region, and the ticket."""
    staff, entry, ticket = request.staff, request.entry, request.ticket
    region = entry.home_region
    pol = platform.policy
    return decide(
        staff_policies(platform),
        staff={"id": staff.id, "operator": staff.operator, "mfa": True},
        resource={
            "id": entry.user_id,
            "region": region,
            "region_operator": pol.regions[region].operator,
            "region_location": pol.regions[region].location,
            "category": request.category,
        },
        context={
            "purpose": request.purpose,
            "ticket_id": request.ticket_id,
            "ticket_open": ticket is not None and ticket.state == "open",
            "ticket_operator": ticket.operator if ticket else "",
            "ticket_region": ticket.region if ticket else "",
        },
    )


def _log_decision(
    settings: Settings,
    store: RegionStore,
    request: _AccessRequest,
    *,
    allowed: bool,
    policy_ids: list[str],
) -> int:
    """Append the decision to the region's audit log, committed on return; its index."""
    purpose = request.purpose
    log = region_log(settings, store)
    (index,) = log.record_now(
        StaffAccess(
            staff_id=request.staff.id,
            operator=request.staff.operator,
            subject=log.pseudonym(request.entry.user_id),
            data_category=request.category,
            purpose=purpose if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", purpose) else "invalid",
            ticket=request.ticket_id or None,
            decision="allow" if allowed else "deny",
            policy_ids=policy_ids,
        )
    )
    return index


def _read_category(
    store: RegionStore, entry: DirectoryEntry, category: str, out: StaffRead
) -> None:
    """The user's data of `category`, decrypted, into `out`."""
    cipher = store.cipher(entry.user_id)
    with store.session() as s:
        if category == "account":
            account = s.get(Account, entry.user_id)
            if account is None:
                raise NotFound("The account has no data in its region.")
            out.account = AccountData(
                user_id=account.id,
                handle=account.handle,
                email=cipher.decrypt("email", account.email_ct),
                birth_date=date.fromisoformat(cipher.decrypt("birth_date", account.birth_date_ct)),
                jurisdiction=account.jurisdiction,
                region=entry.home_region,
                created_at=account.created_at,
            )
        else:
            rows = s.scalars(select(LoginSession).where(LoginSession.owner_id == entry.user_id))
            out.sessions = [
                SessionData(
                    id=r.id,
                    created_at=r.created_at,
                    expires_at=r.expires_at,
                    revoked=r.revoked_at is not None,
                    client_address=cipher.decrypt("client_address", r.client_address_ct),
                    user_agent=cipher.decrypt("user_agent", r.user_agent_ct),
                )
                for r in rows
            ]
