"""Signing in with Spotify and linking a Spotify account: what StemForge decides and stores.

The OAuth round trip itself (authorize URL with PKCE, code exchange) is authlib's, driven by the route in
``core/api/routes/spotify_auth.py``; this module keeps the pending requests (``begin`` / ``consume``), turns
Spotify's ``/v1/me`` into a ``SpotifyProfile``, and applies the rules:

- a signed-in user links the account (refused when it is linked to another StemForge user);
- signed out, an account already linked signs its user in;
- signed out, a new account creates a user and signs in, unless a StemForge account has the same e-mail:
  Spotify does not prove that the address belongs to this person, so nothing is merged and the person is
  asked to log in with the password and link Spotify from the settings.

Tokens are stored encrypted (``core.security.SecretBox``); nothing here talks HTTP.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, StemForgeError
from core.security import SecretBox
from data.models import OAuthState, SpotifyAccount, User, UserSettings, utcnow

# What the features need and no more: profile and e-mail, private and collaborative playlists, Liked Songs.
SCOPES = ("user-read-email", "user-read-private", "playlist-read-private", "playlist-read-collaborative",
          "user-library-read")

SIGN_IN = "sign_in"
LINK = "link"
# The code of a refusal for a state that was used before (or never issued): a replayed callback.
STATE_USED = "spotify_state_used"


class SignInRefused(StemForgeError):
    """The sign-in or link did not happen; ``message`` says why in words for the person."""

    code = "spotify_sign_in_failed"
    status = 400


@dataclass(frozen=True)
class PendingSignIn:
    intent: str  # sign_in | link
    user_id: uuid.UUID | None
    code_verifier: str
    next_path: str


@dataclass(frozen=True)
class SpotifyProfile:
    """The parts of ``GET /v1/me`` StemForge keeps. ``email`` is None when Spotify does not give one."""

    id: str
    display_name: str
    email: str | None


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def begin(session: AsyncSession, box: SecretBox, *, state: str, code_verifier: str, browser_key: str,
                user_id: uuid.UUID | None, next_path: str, ttl_s: int) -> None:
    """Remember a redirect to Spotify: ``state`` is what went into the authorize URL, ``browser_key`` a value
    only this browser holds (its session CSRF token). Expired requests of anyone are dropped on the way."""
    now = utcnow()
    await session.exec(delete(OAuthState).where(col(OAuthState.expires_at) < now))  # type: ignore[call-overload]
    session.add(OAuthState(
        state_hash=_sha256(state), browser_hash=_sha256(browser_key), intent=LINK if user_id else SIGN_IN,
        user_id=user_id, code_verifier_encrypted=box.encrypt(code_verifier), next_path=next_path[:500],
        expires_at=now + timedelta(seconds=ttl_s)))
    await session.commit()


async def consume(session: AsyncSession, box: SecretBox, *, state: str | None, browser_key: str) -> PendingSignIn:
    """The pending request ``state`` names, used up: a second callback with the same state finds nothing.

    Raises ``SignInRefused`` for a missing, unknown, already used or expired state, and for a callback that
    reaches another browser than the one that started the sign-in (a login CSRF attempt).
    """
    if not state:
        raise SignInRefused("Spotify sent no state back; start again with the Spotify button.")
    key = _sha256(state)
    row = await session.get(OAuthState, key)
    if row is None:
        raise SignInRefused("This Spotify sign-in link was already used or is unknown; start again with the "
                            "Spotify button.", code=STATE_USED)
    # Delete before deciding anything: of two requests racing with one state, only one deletes the row.
    result = await session.exec(delete(OAuthState).where(col(OAuthState.state_hash) == key))  # type: ignore[call-overload]
    await session.commit()
    if result.rowcount != 1:
        raise SignInRefused("This Spotify sign-in link was already used; start again with the Spotify button.",
                            code=STATE_USED)
    if row.expires_at < utcnow():
        raise SignInRefused("The Spotify sign-in took too long and expired; start again with the Spotify button.")
    if row.browser_hash != _sha256(browser_key):
        raise SignInRefused("This Spotify sign-in was started in another browser; start it again here.")
    verifier = box.decrypt(row.code_verifier_encrypted)
    if verifier is None:
        raise SignInRefused("The server's encryption key changed during the sign-in; start again.")
    return PendingSignIn(row.intent, row.user_id, verifier, row.next_path or "/")


def profile_from_me(obj: Mapping[str, Any]) -> SpotifyProfile:
    """``GET /v1/me`` as a ``SpotifyProfile``; ``SignInRefused`` when it names no account."""
    spotify_id = obj.get("id")
    if not isinstance(spotify_id, str) or not spotify_id:
        raise SignInRefused("Spotify did not say which account signed in; try again.")
    email = obj.get("email")
    name = obj.get("display_name")
    return SpotifyProfile(spotify_id, name if isinstance(name, str) and name else spotify_id,
                          email.strip() if isinstance(email, str) and "@" in email else None)


def _expiry(token: Mapping[str, Any]) -> datetime | None:
    expires_at = token.get("expires_at")
    if isinstance(expires_at, int | float):
        return datetime.fromtimestamp(expires_at, UTC)
    expires_in = token.get("expires_in")
    if isinstance(expires_in, int | float):
        return utcnow() + timedelta(seconds=float(expires_in))
    return None


def store_token(account: SpotifyAccount, token: Mapping[str, Any], box: SecretBox) -> None:
    """Put an OAuth token answer (``access_token``, ``refresh_token``, ``expires_at``/``expires_in``, ``scope``)
    on the account, encrypted. A refresh answer without a ``refresh_token`` keeps the stored one."""
    account.access_token_encrypted = box.encrypt(str(token["access_token"]))
    if token.get("refresh_token"):
        account.refresh_token_encrypted = box.encrypt(str(token["refresh_token"]))
    account.expires_at = _expiry(token)
    scope = token.get("scope")
    if isinstance(scope, str) and scope:
        account.scope = scope[:500]
    elif isinstance(scope, list | tuple):
        account.scope = " ".join(map(str, scope))[:500]
    account.updated_at = utcnow()


def stored_token(account: SpotifyAccount, box: SecretBox) -> dict[str, Any] | None:
    """The account's token as authlib takes it, or None when it cannot be decrypted (key changed)."""
    access = box.decrypt(account.access_token_encrypted) if account.access_token_encrypted else None
    refresh = box.decrypt(account.refresh_token_encrypted) if account.refresh_token_encrypted else None
    if access is None or refresh is None:
        return None
    token: dict[str, Any] = {"access_token": access, "refresh_token": refresh, "token_type": "Bearer"}
    if account.expires_at is not None:
        token["expires_at"] = int(account.expires_at.timestamp())
    return token


async def account_of(session: AsyncSession, user_id: uuid.UUID) -> SpotifyAccount | None:
    return (await session.exec(select(SpotifyAccount).where(SpotifyAccount.user_id == user_id))).first()


async def _account_by_spotify_id(session: AsyncSession, spotify_id: str) -> SpotifyAccount | None:
    return (await session.exec(select(SpotifyAccount).where(SpotifyAccount.spotify_user_id == spotify_id))).first()


async def link(session: AsyncSession, box: SecretBox, user: User, profile: SpotifyProfile,
               token: Mapping[str, Any]) -> SpotifyAccount:
    """Link ``profile``'s Spotify account to ``user`` (replacing a link to another Spotify account).

    Raises ``SignInRefused`` when the account is linked to another StemForge user.
    """
    owner = await _account_by_spotify_id(session, profile.id)
    if owner is not None and owner.user_id != user.id:
        raise SignInRefused(f"The Spotify account {profile.display_name} is already linked to another StemForge "
                            "account. Unlink it there first, or sign in with Spotify to use that account.")
    account = owner or await account_of(session, user.id)
    if account is None:
        account = SpotifyAccount(user_id=user.id, spotify_user_id=profile.id)
    account.spotify_user_id = profile.id
    account.display_name = profile.display_name[:200]
    store_token(account, token, box)
    session.add(account)
    try:
        await session.commit()
    except IntegrityError as exc:  # another request linked it at the same moment
        await session.rollback()
        raise SignInRefused(f"The Spotify account {profile.display_name} was just linked to another StemForge "
                            "account.") from exc
    return account


async def sign_in(session: AsyncSession, box: SecretBox, profile: SpotifyProfile,
                  token: Mapping[str, Any]) -> tuple[User, bool]:
    """The user to sign in for this Spotify account: ``(user, created)``.

    A linked account signs in its user (its tokens refreshed); a new one creates a user without a password
    (they can set one in the settings). Raises ``SignInRefused`` when a StemForge account already uses the
    e-mail Spotify reports: the person logs in with the password and links Spotify from the settings.
    """
    account = await _account_by_spotify_id(session, profile.id)
    if account is not None:
        user = await session.get(User, account.user_id)
        if user is not None:
            account.display_name = profile.display_name[:200]
            store_token(account, token, box)
            session.add(account)
            await session.commit()
            return user, False
    email = (profile.email or f"{profile.id}@spotify.invalid").lower()
    taken = (await session.exec(select(User).where(func.lower(User.email) == email))).first()
    if taken is not None:
        raise SignInRefused(f"A StemForge account with the e-mail {email} already exists. Log in with its password, "
                            "then link Spotify in Settings.", code="spotify_email_taken")
    user = User(email=email, password_hash=None, display_name=profile.display_name[:120])
    session.add(user)
    try:
        await session.flush()  # the user row first: the rows below point at it
    except IntegrityError as exc:  # the e-mail was registered a moment ago
        await session.rollback()
        raise SignInRefused(f"A StemForge account with the e-mail {email} already exists.",
                            code="spotify_email_taken") from exc
    session.add(UserSettings(user_id=user.id))
    account = SpotifyAccount(user_id=user.id, spotify_user_id=profile.id, display_name=profile.display_name[:200])
    store_token(account, token, box)
    session.add(account)
    try:
        await session.commit()
    except IntegrityError:  # the same person finished two sign-ins at once: the other one created the user
        await session.rollback()
        account = await _account_by_spotify_id(session, profile.id)
        user_again = await session.get(User, account.user_id) if account else None
        if user_again is None:
            raise
        return user_again, False
    return user, True


async def unlink(session: AsyncSession, user: User) -> bool:
    """Forget the user's Spotify account and its tokens; False when none was linked.

    Raises ``Conflict`` (``password_required``) for a user without a password: Spotify is their only way in.
    """
    if user.password_hash is None and await account_of(session, user.id) is not None:
        raise Conflict("Set a password first: Spotify is the only way into this account.", code="password_required")
    result = await session.exec(delete(SpotifyAccount).where(col(SpotifyAccount.user_id) == user.id))  # type: ignore[call-overload]
    await session.commit()
    return bool(result.rowcount)
