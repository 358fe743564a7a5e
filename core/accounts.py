"""Accounts and API tokens: registration, sign-in, token lifecycle."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import security
from core.errors import Conflict, InvalidInput, NotFound, Unauthorized
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
    if not security.verify_password(user.password_hash, current):
        raise InvalidInput("Current password is wrong", details={"current_password": "wrong password"})
    check_password_rules(new, user.email, min_length)
    user.password_hash = security.hash_password(new)
    user.session_epoch += 1  # signs out every other browser
    session.add(user)
    await session.commit()


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
    return record


async def user_for_token(session: AsyncSession, token: str) -> tuple[User, ApiToken] | None:
    if not token.startswith(security.TOKEN_PREFIX):
        return None
    row = (
        await session.exec(
            select(User, ApiToken)
            .join(ApiToken, col(ApiToken.user_id) == col(User.id))
            .where(ApiToken.token_hash == security.hash_api_token(token), col(ApiToken.revoked_at).is_(None))
        )
    ).first()
    return (row[0], row[1]) if row else None
