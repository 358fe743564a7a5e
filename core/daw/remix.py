"""Saved remixes: a user's current edit manifest of a track, with its undo/redo history on the server.

Every client (browser tabs, API scripts) sees one state: the ``Remix`` row holds the manifest and a
``version`` that every change, undo and redo bumps; each change is one ``EditOperation`` holding the JSON
Patches (RFC 6902, the ``jsonpatch`` library) from the manifest before to the one after (``forward``) and
back (``inverse``). Undo applies the newest step's inverse, redo the oldest undone step's forward; a new
change drops the undone steps (the redo branch), as in every editor.

Why patches and not whole manifests per step: a manifest with hundreds of edits is tens of kilobytes, a
fader move changes one number; the history stays small and a step says what it changed.

A change names the version it was made on (``base_version``); if another client changed the remix since,
it is refused with ``409 version_conflict`` and the current state, so no change is lost silently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonpatch
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.daw.manifest import Manifest, ManifestInvalid, check_timeline, default_manifest, parse_manifest
from core.daw.sources import audio_of, referenced_stems, track_stems
from core.errors import Conflict, InvalidInput
from core.stems import latest_stems
from core.tracks import get_track
from data.files import FileStore
from data.models import EditOperation, Remix, Stem, utcnow

HISTORY_LIMIT = 200
HISTORY_SHOWN = 50


@dataclass(frozen=True)
class Step:
    seq: int
    label: str
    undone: bool
    created_at: datetime


@dataclass(frozen=True)
class RemixState:
    """What a client needs: the manifest, its version, whether undo/redo can do anything, the newest steps."""

    track_id: uuid.UUID
    manifest: dict[str, Any]
    version: int
    can_undo: bool
    can_redo: bool
    history: list[Step]
    updated_at: datetime | None


async def _row(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> Remix | None:
    # populate_existing: the version is bumped by a Core UPDATE, which the identity map does not see.
    return (await session.exec(select(Remix).where(Remix.user_id == user_id, Remix.track_id == track_id)
                               .execution_options(populate_existing=True))).first()


async def _steps(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> list[EditOperation]:
    rows = await session.exec(select(EditOperation)
                              .where(EditOperation.user_id == user_id, EditOperation.track_id == track_id)
                              .order_by(col(EditOperation.seq)))
    return list(rows.all())


async def _state(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID, row: Remix) -> RemixState:
    steps = await _steps(session, user_id, track_id)
    return RemixState(
        track_id=track_id, manifest=row.manifest, version=row.version,
        can_undo=any(not s.undone for s in steps), can_redo=any(s.undone for s in steps),
        history=[Step(s.seq, str(s.op.get("label", "")), s.undone, s.created_at) for s in steps[-HISTORY_SHOWN:]],
        updated_at=row.updated_at,
    )


def _references_gone(manifest: dict[str, Any], stems: dict[uuid.UUID, Stem]) -> bool:
    ids = {str(s) for s in stems}
    return any(entry.get("stem_id") not in ids for entry in manifest.get("stems", []))


async def _default(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> dict[str, Any]:
    newest = await latest_stems(session, user_id, track_id)
    if not newest:
        raise Conflict("The track has no stems yet; separate it first, then open it in the editor",
                       code="no_stems")
    return default_manifest(track_id, [s.id for s in newest]).dump()


async def read_remix(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> RemixState:
    """The saved remix of the user's track; a track never edited gets the default manifest at version 0
    (every stem of its newest separation at unity gain, centred). A saved remix whose stems no longer exist
    starts over from the default, history cleared.

    Raises NotFound (someone else's or a missing track) and Conflict ``no_stems``.
    """
    await get_track(session, user_id, track_id)
    row = await _row(session, user_id, track_id)
    if row is not None and _references_gone(row.manifest, await track_stems(session, user_id, track_id)):
        await _clear_history(session, user_id, track_id)
        row.manifest = await _default(session, user_id, track_id)
        row.version, row.updated_at = row.version + 1, utcnow()
        session.add(row)
        await session.commit()
    if row is None:
        row = Remix(user_id=user_id, track_id=track_id, manifest=await _default(session, user_id, track_id))
        return RemixState(track_id, row.manifest, 0, False, False, [], None)
    return await _state(session, user_id, track_id, row)


async def validate_for_track(session: AsyncSession, store: FileStore, user_id: uuid.UUID, track_id: uuid.UUID,
                             manifest: Manifest) -> Manifest:
    """A manifest fit to be saved for this track: its stems are the track's stored stems, its times inside
    the track. Raises ManifestInvalid with the offending paths."""
    if manifest.track_id is not None and manifest.track_id != track_id:
        raise ManifestInvalid({"track_id": "not the track of this remix"})
    rows = referenced_stems(manifest, await track_stems(session, user_id, track_id), allow_files=False)
    audios = await audio_of(store, [r for r in rows if isinstance(r, Stem)])
    check_timeline(manifest, max(a.frames * 1000.0 / a.sample_rate for a in audios))
    return manifest.model_copy(update={"track_id": track_id})


async def _clear_history(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID) -> None:
    await session.exec(delete(EditOperation).where(  # type: ignore[call-overload]
        col(EditOperation.user_id) == user_id, col(EditOperation.track_id) == track_id))


async def _save(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID, row: Remix | None,
                version: int, manifest: dict[str, Any]) -> None:
    """Write the new manifest if the remix is still at ``version`` (else Conflict ``version_conflict``)."""
    if row is None:
        session.add(Remix(user_id=user_id, track_id=track_id, manifest=manifest, version=1))
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            raise _conflict() from None
        return
    result = await session.exec(update(Remix)  # type: ignore[call-overload]
                                .where(col(Remix.id) == row.id, col(Remix.version) == version)
                                .values(manifest=manifest, version=version + 1, updated_at=utcnow())
                                .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        await session.rollback()
        raise _conflict()


def _conflict() -> Conflict:
    return Conflict("The remix was changed meanwhile (another tab or client); reload it and apply your change "
                    "again", code="version_conflict")


async def apply_change(session: AsyncSession, store: FileStore, user_id: uuid.UUID, track_id: uuid.UUID, *,
                       manifest: dict[str, Any] | None = None, patch: list[dict[str, Any]] | None = None,
                       base_version: int | None = None, label: str = "") -> RemixState:
    """Change the saved remix to ``manifest``, or by the JSON Patch ``patch`` applied to the current one.

    ``base_version``: the version the client's change was made on; a different current version raises
    Conflict ``version_conflict``. A change that changes nothing records no step. Raises ManifestInvalid
    for a result that is not a valid manifest for this track, InvalidInput for a patch that does not apply.
    """
    current = await read_remix(session, user_id, track_id)
    if base_version is not None and base_version != current.version:
        raise _conflict()
    if (manifest is None) == (patch is None):
        message = "send the whole new manifest or a patch" if manifest is None else "send manifest or patch, not both"
        raise InvalidInput(f"Invalid change: {message}", details={"manifest": message})
    if patch is not None:
        try:
            manifest = jsonpatch.apply_patch(current.manifest, patch)
        except jsonpatch.JsonPatchTestFailed:
            reason = "a test operation failed: the remix does not hold the value the patch expects"
            raise InvalidInput(f"The patch does not apply: {reason}", details={"patch": reason}) from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as exc:
            raise InvalidInput(f"The patch does not apply: {exc}", details={"patch": str(exc)}) from None
    assert manifest is not None
    parsed = await validate_for_track(session, store, user_id, track_id, parse_manifest(manifest))
    after = parsed.dump()
    forward = jsonpatch.make_patch(current.manifest, after).patch
    if not forward:
        return current
    inverse = jsonpatch.make_patch(after, current.manifest).patch
    row = await _row(session, user_id, track_id)
    await _save(session, user_id, track_id, row, current.version, after)
    await session.exec(delete(EditOperation).where(  # type: ignore[call-overload]
        col(EditOperation.user_id) == user_id, col(EditOperation.track_id) == track_id,
        col(EditOperation.undone).is_(True)))
    newest = (await session.exec(select(func.max(EditOperation.seq)).where(
        EditOperation.user_id == user_id, EditOperation.track_id == track_id))).one()
    seq = (newest or 0) + 1
    session.add(EditOperation(user_id=user_id, track_id=track_id, seq=seq,
                              op={"label": label[:200], "forward": forward, "inverse": inverse}))
    await session.exec(delete(EditOperation).where(  # type: ignore[call-overload]
        col(EditOperation.user_id) == user_id, col(EditOperation.track_id) == track_id,
        col(EditOperation.seq) <= seq - HISTORY_LIMIT))
    await session.commit()
    return await read_remix(session, user_id, track_id)


async def _step_back_or_forth(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID, *,
                              undo: bool, base_version: int | None) -> RemixState:
    current = await read_remix(session, user_id, track_id)
    if base_version is not None and base_version != current.version:
        raise _conflict()
    steps = await _steps(session, user_id, track_id)
    candidates = [s for s in steps if s.undone != undo]
    if not candidates:
        raise Conflict("Nothing to undo" if undo else "Nothing to redo",
                       code="nothing_to_undo" if undo else "nothing_to_redo")
    step = candidates[-1] if undo else candidates[0]
    patch = step.op["inverse" if undo else "forward"]
    try:
        manifest = jsonpatch.apply_patch(current.manifest, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:  # history out of step
        raise Conflict(f"This step cannot be {'undone' if undo else 'redone'} any more ({exc})",
                       code="history_broken") from None
    await _save(session, user_id, track_id, await _row(session, user_id, track_id), current.version, manifest)
    step.undone = undo
    session.add(step)
    await session.commit()
    return await read_remix(session, user_id, track_id)


async def undo(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID,
               base_version: int | None = None) -> RemixState:
    """Undo the newest step; Conflict ``nothing_to_undo`` when there is none."""
    return await _step_back_or_forth(session, user_id, track_id, undo=True, base_version=base_version)


async def redo(session: AsyncSession, user_id: uuid.UUID, track_id: uuid.UUID,
               base_version: int | None = None) -> RemixState:
    """Redo the oldest undone step; Conflict ``nothing_to_redo`` when there is none."""
    return await _step_back_or_forth(session, user_id, track_id, undo=False, base_version=base_version)
