"""Accounts: sign-up, login, sessions and profile.

Sign-up spans two databases with no distributed transaction, so its order is the invariant:
1. the Directory entry is committed as `pending` (the region's residency check needs it);
2. the account is committed in the home region; if that fails the entry is removed again;
3. the entry turns `active` and the public profile leaves the region through Egress.
A crash between 1 and 2 leaves a pending entry and no personal data; `purge_stale_pending`
removes it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reelm.accounts.models import Account, LoginSession
from reelm.accounts.schemas import (
    AccountRead,
    ProfileUpdate,
    PublicProfileRead,
    PublicProfileRecord,
    SessionRead,
    SignedIn,
    SignUp,
)
from reelm.accounts.security import (
    hash_password,
    new_session_token,
    token_hash,
    token_region,
    verify_password,
)
from reelm.accounts.throttle import AddressThrottle, address_key
from reelm.config import Settings
from reelm.db import new_id, utcnow
from reelm.effects.service import action
from reelm.errors import (
    Conflict,
    FieldErrors,
    InvalidInput,
    NotFound,
    RateLimited,
    ReelmError,
    TryAgainLater,
    Unauthorized,
    UserNotFound,
)
from reelm.residency.egress import egress
from reelm.residency.models import ACTIVE, MOVING, PENDING, DirectoryEntry, PublicProfile
from reelm.residency.store import MOVING_RETRY_AFTER, Platform, RegionStore

HANDLE = re.compile(r"^[a-z0-9_](?:[a-z0-9_.]{1,22})[a-z0-9_]$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RESERVED = {
    "admin",
    "api",
    "static",
    "media",
    "settings",
    "login",
    "logout",
    "signup",
    "reelm",
    "support",
    "staff",
    "root",
    "explore",
    "search",
    "tag",
    "sound",
    "upload",
    "create",
}
MIN_AGE = 13
MIN_PASSWORD = 8
WRONG_LOGIN = "Wrong handle or password."


@dataclass(frozen=True)
class CurrentUser:
    user_id: str
    handle: str
    region: str
    session_id: str
    moving: bool = False
    """A carve-out is moving this user's data: reads work, writes get 503 until it is done."""


class TooYoung(InvalidInput):
    """Under the minimum age. The web edge remembers the refusal in the browser for a day
    (`AGE_REFUSED_COOKIE`), so changing the year and submitting again does not pass."""

    code = "too_young"


AGE_REFUSED_COOKIE = "reelm_age_refused"
AGE_REFUSED_SECONDS = 24 * 3600
AGE_REFUSED = (
    "Sorry, you can't sign up for reelm. You must be at least 13 years old to use reelm."
)


def check_not_age_refused(*, refused_here: bool) -> None:
    """A browser that was refused for age within a day stays refused, whatever it sends now."""
    if refused_here:
        raise TooYoung(AGE_REFUSED, code="age_refused")


def check_handle(handle: str) -> str:
    """Validate a handle; returns its case-insensitive key."""
    key = handle.lower()
    if not HANDLE.match(key) or ".." in key:
        raise InvalidInput(
            "A handle is 3 to 24 letters, digits, underscores or dots, not starting or ending "
            "with a dot.",
            code="invalid_handle",
        )
    if key in RESERVED:
        raise InvalidInput(
            f"The handle {handle!r} is reserved; choose another.", code="handle_reserved"
        )
    return key


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def check_sign_up_input(platform: Platform, data: SignUp) -> tuple[str, str]:
    """Validate every field before anything is written; returns (handle_key, home region).

    Every wrong field is reported at once (`FieldErrors`), the taken handle included, so a
    form shows all that needs fixing in one round. The handle is checked against the Directory
    here for the message only; the insert in `check_sign_up` is what guarantees uniqueness."""
    errors: dict[str, ReelmError] = {}
    key = data.handle.lower()
    try:
        key = check_handle(data.handle)
    except ReelmError as e:
        errors["handle"] = e
    else:
        with platform.global_store.session() as g:
            if g.scalar(select(DirectoryEntry.user_id).where(DirectoryEntry.handle_key == key)):
                errors["handle"] = Conflict(
                    f"The handle {data.handle!r} is taken.", code="handle_taken"
                )
    today = utcnow().date()
    if data.birth_date > today:
        errors["birth_date"] = InvalidInput(
            "The birth date is in the future.", code="invalid_birth_date"
        )
    elif age_on(data.birth_date, today) < MIN_AGE:
        errors["birth_date"] = TooYoung(
            f"You must be at least {MIN_AGE} years old to use reelm.", code="too_young"
        )
    if not EMAIL.match(data.email):
        errors["email"] = InvalidInput(
            "That does not look like an email address.", code="invalid_email"
        )
    if len(data.password) < MIN_PASSWORD:
        errors["password"] = InvalidInput(
            f"Choose a password of at least {MIN_PASSWORD} characters.", code="weak_password"
        )
    region = ""
    try:
        region = platform.policy.region_for(data.jurisdiction.upper())
    except ReelmError as e:
        errors["jurisdiction"] = e
    if errors:
        raise FieldErrors(errors)
    return key, region


def check_sign_up(
    platform: Platform,
    settings: Settings,
    data: SignUp,
    *,
    client_address: str = "",
    user_agent: str = "",
    age_refused: bool = False,
) -> SignedIn:
    """Sign up. `age_refused`: this browser was refused for age within the last day."""
    check_not_age_refused(refused_here=age_refused)
    key, region = check_sign_up_input(platform, data)
    password_hash = hash_password(settings, data.password)
    user_id = new_id()
    try:
        with platform.global_store.transaction() as g:
            if g.scalar(select(DirectoryEntry.user_id).where(DirectoryEntry.handle_key == key)):
                raise Conflict(f"The handle {data.handle!r} is taken.", code="handle_taken")
            g.add(
                DirectoryEntry(
                    user_id=user_id,
                    handle=data.handle,
                    handle_key=key,
                    home_region=region,
                    state=PENDING,
                )
            )
    except IntegrityError:
        raise Conflict(f"The handle {data.handle!r} is taken.", code="handle_taken") from None

    store = platform.region(region)
    try:
        store.keys.ensure_data_key(user_id)
        cipher = store.cipher(user_id)
        with store.transaction() as s:
            account = Account(
                id=user_id,
                owner_id=user_id,
                handle=data.handle,
                email_ct=cipher.encrypt("email", data.email),
                password_hash=password_hash,
                birth_date_ct=cipher.encrypt("birth_date", data.birth_date.isoformat()),
                jurisdiction=data.jurisdiction.upper(),
                display_name=data.display_name or data.handle,
                interests=json.dumps(data.interests) if data.interests else None,
            )
            s.add(account)
            s.flush()
            token = _do_open_session(s, store, settings, account, client_address, user_agent)
    except BaseException:
        store.keys.destroy_data_key(user_id)
        with platform.global_store.transaction() as g:
            g.execute(delete(DirectoryEntry).where(DirectoryEntry.user_id == user_id))
        raise

    with platform.global_store.transaction() as g:
        entry = g.get(DirectoryEntry, user_id)
        assert entry is not None
        entry.state = ACTIVE
        egress(g, _public_profile(account, region))
    return SignedIn(token=token, account=_account_read(store, account))


def _public_profile(account: Account, region: str) -> PublicProfileRecord:
    return PublicProfileRecord(
        user_id=account.id,
        handle=account.handle,
        display_name=account.display_name,
        bio=account.bio,
        avatar_url=None,
        region=region,
    )


def _account_read(store: RegionStore, account: Account) -> AccountRead:
    cipher = store.cipher(account.id)
    return AccountRead(
        id=account.id,
        handle=account.handle,
        email=cipher.decrypt("email", account.email_ct),
        birth_date=date.fromisoformat(cipher.decrypt("birth_date", account.birth_date_ct)),
        jurisdiction=account.jurisdiction,
        region=store.name,
        display_name=account.display_name,
        bio=account.bio,
        is_private=account.is_private,
        created_at=account.created_at,
        deletion_due_at=account.deletion_due_at,
    )


def _do_open_session(
    s: Session,
    store: RegionStore,
    settings: Settings,
    account: Account,
    client_address: str,
    user_agent: str,
) -> str:
    token = new_session_token(store.name)
    now = utcnow()
    cipher = store.cipher(account.id)
    s.add(
        LoginSession(
            owner_id=account.id,
            account_id=account.id,
            token_hash=token_hash(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.session_ttl_hours),
            client_address_ct=cipher.encrypt("client_address", client_address[:64]),
            user_agent_ct=cipher.encrypt("user_agent", user_agent[:300]),
        )
    )
    return token


def _too_many(seconds: int) -> RateLimited:
    return RateLimited(
        f"Too many failed logins; try again in {seconds} seconds.", retry_after=seconds
    )


def _check_account_throttle(settings: Settings, account: Account) -> None:
    """Refuse (before the password is checked) an account that failed too often this window."""
    ends = account.login_window_ends_at
    now = utcnow()
    if ends is not None and ends > now and account.login_failures >= (
        settings.login_max_failures_per_handle
    ):
        raise _too_many(max(1, math.ceil((ends - now).total_seconds())))


def _record_account_failure(store: RegionStore, settings: Settings, account_id: str) -> None:
    """One more failure in the account's window (a new window if the last one ended), in one
    UPDATE, so concurrent failures on several web processes all count."""
    now = utcnow()
    ended = or_(Account.login_window_ends_at.is_(None), Account.login_window_ends_at <= now)
    with store.transaction() as s:
        s.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(
                login_failures=case((ended, 1), else_=Account.login_failures + 1),
                login_window_ends_at=case(
                    (ended, now + timedelta(seconds=settings.login_window_seconds)),
                    else_=Account.login_window_ends_at,
                ),
            )
            .execution_options(synchronize_session=False)
        )


def check_login(
    platform: Platform,
    settings: Settings,
    throttle: AddressThrottle,
    *,
    handle: str,
    password: str,
    client_address: str = "",
    user_agent: str = "",
) -> SignedIn:
    """Log in: a session in the user's home region.

    Two throttles, neither in one process's memory: per client address (`throttle`: Redis or
    a file local to the web machines, holding an HMAC of the address for the window only,
    never the global database) and per account (its row in its home region). A refusal
    writes nothing; a wrong password records the failure in both and then answers 401 (the
    one error answer after a write: the write is the throttle's count of that error)."""
    key = handle.lower()
    where = address_key(settings, client_address)
    wait = throttle.blocked_for(where, settings.login_max_failures_per_address)
    if wait:
        raise _too_many(wait)
    with platform.global_store.session() as g:
        entry = g.scalar(select(DirectoryEntry).where(DirectoryEntry.handle_key == key))
    account: Account | None = None
    if entry is not None and entry.state == MOVING:
        raise TryAgainLater(
            "Your account's data is being moved to another region; try again in a few seconds.",
            retry_after=MOVING_RETRY_AFTER,
            code="user_moving",
        )
    if entry is not None and entry.state == ACTIVE:
        store = platform.region(entry.home_region)
        with store.transaction() as s:
            account = s.get(Account, entry.user_id)
            if account is not None:
                _check_account_throttle(settings, account)
                if verify_password(settings, account.password_hash, password):
                    if account.login_failures or account.login_window_ends_at is not None:
                        account.login_failures, account.login_window_ends_at = 0, None
                    token = _do_open_session(
                        s, store, settings, account, client_address, user_agent
                    )
                    return SignedIn(token=token, account=_account_read(store, account))
        if account is not None:
            _record_account_failure(store, settings, account.id)
    else:
        # Spend the same time as a real check so response times do not reveal which handles exist.
        verify_password(settings, _dummy_hash(settings), password)
    throttle.record_failure(where)
    raise Unauthorized(WRONG_LOGIN, code="wrong_credentials")


_DUMMY: dict[tuple[int, int, int], str] = {}


def _dummy_hash(settings: Settings) -> str:
    k = (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    if k not in _DUMMY:
        _DUMMY[k] = hash_password(settings, "not-a-real-password")
    return _DUMMY[k]


@dataclass(frozen=True)
class _FoundSession:
    id: str
    user_id: str
    handle: str
    expires_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime


def _find_session(store: RegionStore, digest: str) -> _FoundSession | None:
    with store.session() as s:
        row = s.execute(
            select(
                LoginSession.id,
                Account.id,
                Account.handle,
                LoginSession.expires_at,
                LoginSession.revoked_at,
                LoginSession.last_seen_at,
            )
            .join(Account, Account.id == LoginSession.account_id)
            .where(LoginSession.token_hash == digest)
        ).first()
    return _FoundSession(*row) if row is not None else None


def access_session(platform: Platform, token: str) -> CurrentUser:
    """The user behind a session token, looked up in the region the token names.

    A carve-out moves a user's sessions with the rest of their data, so a token keeps working
    after its user moved: once the Directory names another home (the named region may still
    hold the old copy for a moment, or nothing any more), the session is read there. While
    the user is `moving`, reads are served from the old home and writes get 503."""
    region = token_region(token)
    if region is None or region not in platform.regions:
        raise Unauthorized("Not signed in (unknown session).", code="invalid_session")
    digest = token_hash(token)
    found = _find_session(platform.regions[region], digest)
    if found is None:  # moved by a carve-out since the token was issued?
        for name, store in platform.regions.items():
            if name != region and (found := _find_session(store, digest)) is not None:
                region = name
                break
    if found is None or found.revoked_at is not None:
        raise Unauthorized("Not signed in (unknown or revoked session).", code="invalid_session")
    home = platform.directory.home(found.user_id)
    if (
        home is not None
        and home.state == ACTIVE
        and home.region != region
        and home.region in platform.regions
    ):
        moved = _find_session(platform.regions[home.region], digest)
        if moved is not None:
            found, region = moved, home.region
    now = utcnow()
    if found.expires_at <= now:
        raise Unauthorized("Your session has expired; log in again.", code="session_expired")
    if now - found.last_seen_at > timedelta(minutes=5):
        try:  # best effort: never refuse a read because the user's data is being moved
            with platform.regions[region].transaction() as s:
                s.execute(
                    update(LoginSession)
                    .where(LoginSession.id == found.id)
                    .values(last_seen_at=now)
                )
        except TryAgainLater:
            pass
    return CurrentUser(
        user_id=found.user_id,
        handle=found.handle,
        region=region,
        session_id=found.id,
        moving=home is not None and home.state == MOVING,
    )


def do_logout(platform: Platform, user: CurrentUser) -> None:
    do_revoke_session(platform, user, session_id=user.session_id)


def list_sessions(platform: Platform, user: CurrentUser) -> list[SessionRead]:
    store = platform.region(user.region)
    cipher = store.cipher(user.user_id)
    with store.session() as s:
        rows = s.scalars(
            select(LoginSession)
            .where(LoginSession.account_id == user.user_id, LoginSession.revoked_at.is_(None))
            .order_by(LoginSession.created_at.desc())
        )
        now = utcnow()
        return [
            SessionRead(
                id=r.id,
                created_at=r.created_at,
                last_seen_at=r.last_seen_at,
                expires_at=r.expires_at,
                client_address=cipher.decrypt("client_address", r.client_address_ct),
                user_agent=cipher.decrypt("user_agent", r.user_agent_ct),
                current=r.id == user.session_id,
            )
            for r in rows
            if r.expires_at > now
        ]


def do_revoke_session(platform: Platform, user: CurrentUser, *, session_id: str) -> None:
    with platform.region(user.region).transaction() as s:
        row = s.get(LoginSession, session_id)
        if row is None or row.account_id != user.user_id:
            raise NotFound("No such session.", code="session_not_found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()


def get_account(platform: Platform, user: CurrentUser) -> AccountRead:
    store = platform.region(user.region)
    with store.session() as s:
        account = s.get(Account, user.user_id)
        if account is None:
            raise NotFound("No such account.")
        return _account_read(store, account)


def do_update_profile(platform: Platform, user: CurrentUser, update: ProfileUpdate) -> AccountRead:
    """Change the profile; its public part reaches the catalog as an effect of the commit."""
    store = platform.region(user.region)
    with action(platform, user.region, user.user_id) as (s, outbox):
        account = s.get(Account, user.user_id)
        if account is None:
            raise NotFound("No such account.")
        for field, value in update.model_dump(exclude_none=True).items():
            setattr(account, field, value)
        s.flush()
        outbox.emit(_public_profile(account, user.region))
        result = _account_read(store, account)
    return result


def get_public_profile(platform: Platform, handle: str) -> PublicProfileRead:
    with platform.global_store.session() as g:
        row = g.scalar(
            select(PublicProfile)
            .join(DirectoryEntry, DirectoryEntry.user_id == PublicProfile.user_id)
            .where(DirectoryEntry.handle_key == handle.lower(), DirectoryEntry.state == ACTIVE)
        )
        if row is None:
            raise UserNotFound(handle)
        return PublicProfileRead.model_validate(row)


def purge_stale_pending(platform: Platform, *, older_than: timedelta = timedelta(hours=1)) -> int:
    """Remove Directory entries of sign-ups that crashed before their region commit."""
    cutoff: datetime = utcnow() - older_than
    with platform.global_store.transaction() as g:
        ids = list(
            g.scalars(
                select(DirectoryEntry.user_id).where(
                    DirectoryEntry.state == PENDING, DirectoryEntry.created_at < cutoff
                )
            )
        )
        stale = []
        for uid in ids:
            region = g.get(DirectoryEntry, uid)
            assert region is not None
            with platform.region(region.home_region).session() as s:
                if s.get(Account, uid) is None:
                    stale.append(uid)
        if stale:
            g.execute(delete(DirectoryEntry).where(DirectoryEntry.user_id.in_(stale)))
        return len(stale)
