"""Per-user preferences (default engine, model, quality, the lalal.ai license key) and profile changes."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core import accounts
from core.errors import InvalidInput
from core.security import SecretBox, mask_secret
from core.settings import Settings
from core.spotify import sign_in
from data.models import User, UserSettings, utcnow


async def _row(session: AsyncSession, user: User) -> UserSettings:
    row = await session.get(UserSettings, user.id)
    if row is None:
        row = UserSettings(user_id=user.id)
        session.add(row)
    return row


async def view(session: AsyncSession, user: User, settings: Settings) -> dict[str, Any]:
    """What the settings page and API show; stored keys only ever masked."""
    row = await _row(session, user)
    spotify_account = await sign_in.account_of(session, user.id)
    key = SecretBox(settings.fernet_key).decrypt(row.lalalai_key_encrypted) if row.lalalai_key_encrypted else None
    return {
        "email": user.email,
        "display_name": user.display_name,
        "default_engine": row.default_engine,
        "default_model": row.default_model,
        "default_quality": row.default_quality,
        "spotify_configured": bool(settings.spotify_client_id and settings.spotify_client_secret),
        "spotify_account": spotify_account.display_name if spotify_account else None,
        "has_password": user.password_hash is not None,
        "lalalai_key": mask_secret(key) if key else None,
    }


async def update(session: AsyncSession, user: User, changes: dict[str, Any], settings: Settings) -> dict[str, Any]:
    new_password = changes.pop("new_password", None)
    current_password = changes.pop("current_password", None)
    if new_password:
        if not current_password and user.password_hash is not None:
            raise InvalidInput("Enter your current password to set a new one",
                               details={"current_password": "required to change the password"})
        await accounts.change_password(session, user, current_password or "", new_password,
                                       min_length=settings.password_min_length)
    row = await _row(session, user)
    if changes.get("display_name") is not None:
        user.display_name = changes["display_name"].strip()
        session.add(user)
    for field in ("default_engine", "default_model", "default_quality"):
        if changes.get(field) is not None:
            setattr(row, field, changes[field])
    if changes.get("lalalai_key") is not None:
        # Write-only: stored encrypted, shown masked by view(); an empty string removes it.
        key = changes["lalalai_key"].strip()
        row.lalalai_key_encrypted = SecretBox(settings.fernet_key).encrypt(key) if key else None
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    return await view(session, user, settings)
