"""Accounts and API tokens: registration, sign-in, token lifecycle."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import event, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import security
from core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from data.db import session_scope
from data.models import ApiToken, User, UserSettings, utcnow

MAX_PASSWORD_LENGTH = 256
# The handful of passwords every cracking list starts with.
_COMMON_PASSWORDS = {
    "password", "password1", "password123", "1234567890", "12345678910", "qwertyuiop",
    "iloveyou12", "letmein123", "welcome123", "abc1234567", "passw0rd12", "qwerty1234",
}


def normalize_email(email: str) -> str:
    try:
        info = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput("Invalid e-mail address", details={"email": str(exc)}) from exc
    return info.normalized.lower()


def check_password_rules(password: str, email: str, min_length: int) -> None:
    problem = None
    if len(password) < min_length:
        problem = f"must be at least {min_length} characters"
    elif len(password) > MAX_PASSWORD_LENGTH:
        problem = f"must be at most {MAX_PASSWORD_LENGTH} characters"
    elif len(set(password)) < 4:
        problem = "is too repetitive"
    elif password.lower() in _COMMON_PASSWORDS:
        problem = "is too common"
    elif password.lower() == email.lower() or password.lower() == email.split("@")[0].lower():
        problem = "must not be your e-mail address"
    if problem:
        raise InvalidInput(f"Password {problem}", details={"password": f"Password {problem}"})


async def register(session: AsyncSession, email: str, password: str, *, min_length: int) -> User:
    email = normalize_email(email)
    check_password_rules(password, email, min_length)
    existing = await session.exec(select(User).where(User.email == email))
    if existing.first() is not None:
        raise Conflict("An account with this e-mail already exists", code="email_taken")
    user = User(email=email, password_hash=security.hash_password(password))
    session.add(user)
    session.add(UserSettings(user_id=user.id))
    try:
        await session.commit()
    except IntegrityError as exc:  # lost a race with an identical registration
        await session.rollback()
        raise Conflict("An account with this e-mail already exists", code="email_taken") from exc
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The user for these credentials; the same error whether the e-mail exists or not."""
    try:
        email = normalize_email(email)
    except InvalidInput:
        email = ""
    user = (await session.exec(select(User).where(User.email == email))).first() if email else None
    if not security.verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("Invalid e-mail or password", code="invalid_credentials")
    if security.password_needs_rehash(user.password_hash or ""):
        user.password_hash = security.hash_password(password)
        session.add(user)
        await session.commit()
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID | str) -> User | None:
    try:
        uid = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    return await session.get(User, uid)


async def get_user_by_email(session: AsyncSession, email: str) -> User:
    user = (await session.exec(select(User).where(User.email == normalize_email(email)))).first()
    if user is None:
        raise NotFound("user")
    return user


async def change_password(
    session: AsyncSession, user: User, current: str, new: str, *, min_length: int
) -> None:
    # A user who signed up with Spotify has no password yet: the first one needs no current password.
    if user.password_hash is not None and not security.verify_password(user.password_hash, current):
        raise InvalidInput("Current password is wrong", details={"current_password": "wrong password"})
    check_password_rules(new, user.email, min_length)
    user.password_hash = security.hash_password(new)
    user.session_epoch += 1  # signs out every other browser
    session.add(user)
    await session.commit()
    _token_cache.forget_user(user.id)


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    record: ApiToken


async def create_token(session: AsyncSession, user: User, name: str = "") -> IssuedToken:
    plain = security.new_api_token()
    record = ApiToken(
        user_id=user.id,
        name=name.strip()[:100],
        token_hash=security.hash_api_token(plain),
        prefix=plain[:10],
    )
    session.add(record)
    await session.commit()
    return IssuedToken(token=plain, record=record)


async def list_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    rows = await session.exec(
        select(ApiToken)
        .where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
        .order_by(col(ApiToken.created_at).desc())
    )
    return list(rows.all())


async def revoke_token(session: AsyncSession, user: User, token_id: uuid.UUID) -> ApiToken:
    record = await session.get(ApiToken, token_id)
    if record is None or record.user_id != user.id or record.revoked_at is not None:
        raise NotFound("token")
    record.revoked_at = utcnow()
    session.add(record)
    await session.commit()
    _token_cache.forget(record.token_hash)
    return record


# --- bearer-token look-ups ---------------------------------------------------------------------


class _TokenCache:
    """A short-lived, per-process memo of token hash -> (user, token) rows, so an API client's burst of
    requests costs one token query every ``TTL_S`` seconds instead of one per request.

    * Entries live ``TTL_S`` (0.5) seconds at most; nothing negative is cached (an unknown or revoked
      token always goes to the database).
    * Any ORM update or delete of a user or token row in this process (``revoke_token``,
      ``change_password``, ...) drops the entries concerned at once, again after ``revoke_token``'s
      commit, and bumps a generation counter so a look-up that was already in flight cannot store its
      now-stale row afterwards. A change made by another process (the CLI, a second web process) or by
      a bulk SQL statement takes effect here within ``TTL_S`` seconds.
    * The cached rows are detached copies. ``user_for_token`` merges fresh instances of them into the
      caller's session (no SQL); ``cached_token_user`` hands out the shared detached ``User`` itself,
      which its callers only read.
    """

    TTL_S = 0.5
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, User, ApiToken]] = {}
        self.generation = 0

    def get(self, token_hash: str) -> tuple[User, ApiToken] | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._entries.pop(token_hash, None)
            return None
        return entry[1], entry[2]

    def put(self, token_hash: str, user: User, token: ApiToken, generation: int) -> None:
        if generation != self.generation:
            return  # a revocation happened while this row was being read
        if inspect(user).modified or inspect(token).modified:
            return  # only clean rows, exactly as stored, are worth keeping
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        scratch = Session()  # detached, clean copies: the caller keeps (and may change) its own objects
        user_copy, token_copy = scratch.merge(user, load=False), scratch.merge(token, load=False)
        scratch.expunge_all()
        self._entries[token_hash] = (time.monotonic() + self.TTL_S, user_copy, token_copy)

    def forget(self, token_hash: str) -> None:
        self.generation += 1
        self._entries.pop(token_hash, None)

    def forget_user(self, user_id: uuid.UUID) -> None:
        self.generation += 1
        for key in [k for k, (_, user, _) in list(self._entries.items()) if user.id == user_id]:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


_token_cache = _TokenCache()


@event.listens_for(ApiToken, "after_update")
@event.listens_for(ApiToken, "after_delete")
def _token_row_changed(_mapper: object, _conn: object, target: ApiToken) -> None:
    _token_cache.forget(target.token_hash)


@event.listens_for(User, "after_update")
@event.listens_for(User, "after_delete")
def _user_row_changed(_mapper: object, _conn: object, target: User) -> None:
    _token_cache.forget_user(target.id)


def cached_token_user(token: str) -> User | None:
    """The owner of an active token if this process looked the token up less than ``TTL_S`` ago, else
    None (then ask ``user_for_token``). No session, no SQL, no copy: an API request authenticated by a
    cached token costs no database work before the route's own.

    The ``User`` is the cache's shared, detached snapshot: read it (``user.id``), never change it or
    add it to a session; load the row in your own session to change the account.
    """
    if not token.startswith(security.TOKEN_PREFIX):
        return None
    cached = _token_cache.get(security.hash_api_token(token))
    return cached[0] if cached is not None else None


# Token look-ups in flight, per event loop and token: when the cache entry of a busy client expires,
# its many concurrent requests share one query instead of each opening a session of its own.
_owner_lookups: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[User | None]] = {}


async def token_owner(token: str) -> User | None:
    """The owner of an active token, or None; for authenticating a request.

    From the token cache when it is fresh (no session, no SQL); else one look-up in a short session
    of its own, shared by every request of this event loop that asks for the same token meanwhile.
    The ``User`` is a detached, read-only snapshot, possibly shared: read it, never change it.
    """
    user = cached_token_user(token)
    if user is not None:
        return user
    key = (asyncio.get_running_loop(), token)
    task = _owner_lookups.get(key)
    if task is None:
        task = asyncio.ensure_future(_look_up_owner(token))
        _owner_lookups[key] = task
        task.add_done_callback(lambda _done: _owner_lookups.pop(key, None))
    # Shielded: one waiter giving up (a client hanging up) must not cancel the others' look-up.
    return await asyncio.shield(task)


async def _look_up_owner(token: str) -> User | None:
    async with session_scope() as session:
        found = await user_for_token(session, token)
    return found[0] if found is not None else None


async def user_for_token(session: AsyncSession, token: str) -> tuple[User, ApiToken] | None:
    """The active token's owner and record, or None for an unknown or revoked token.

    Answers from a per-process cache for up to half a second (see ``_TokenCache``): a revocation in
    this process is effective immediately, one made in another process (the CLI) within 0.5 s.
    """
    if not token.startswith(security.TOKEN_PREFIX):
        return None
    token_hash = security.hash_api_token(token)
    cached = _token_cache.get(token_hash)
    if cached is not None:
        merge = session.sync_session.merge  # load=False: no SQL, fresh instances in this session
        return merge(cached[0], load=False), merge(cached[1], load=False)
    generation = _token_cache.generation
    row = (
        await session.exec(
            select(User, ApiToken)
            .join(ApiToken, col(ApiToken.user_id) == col(User.id))
            .where(ApiToken.token_hash == token_hash, col(ApiToken.revoked_at).is_(None))
        )
    ).first()
    if row is None:
        return None
    _token_cache.put(token_hash, row[0], row[1], generation)
    return row[0], row[1]
