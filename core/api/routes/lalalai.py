"""lalal.ai management: the quota of the user's license key, and cancelling tasks.

Every route needs the user's stored key (``PUT /users/settings`` ``lalalai_key``, or the settings page);
without one it answers 401 ``unauthorized`` saying where to set it. lalal.ai being unreachable answers
503 ``lalalai_unavailable``. The logic lives in core/lalalai_account.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from core import lalalai_account
from core.api.deps import CurrentUser, SessionDep, SettingsDep
from core.api.schemas import BAD_BODY, Envelope, ErrorOut, LalalaiCancelOut, LalalaiCancelRequest, LalalaiQuotaOut

router = APIRouter(prefix="/api/lalalai", tags=["lalal.ai"])

_errors = {401: {"model": ErrorOut, "description": "No lalal.ai key set, or lalal.ai refused it"},
           429: {"model": ErrorOut}, 502: {"model": ErrorOut, "description": "lalal.ai refused the request"},
           503: {"model": ErrorOut, "description": "lalal.ai could not be reached"}}


def _out(outcome: lalalai_account.CancelOutcome) -> Envelope[LalalaiCancelOut]:
    return Envelope(data=LalalaiCancelOut(cancelled_tasks=outcome.task_ids, cancelled_jobs=outcome.job_ids))


@router.get("/quota", response_model=Envelope[LalalaiQuotaOut], responses=_errors)
async def quota(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> Envelope[LalalaiQuotaOut]:
    """lalal.ai's minutes left on your key (`remaining_minutes`), the minutes StemForge's jobs used on it
    (`used_minutes`), and both together (`quota_minutes`)."""
    found = await lalalai_account.quota(session, user.id, settings)
    return Envelope(data=LalalaiQuotaOut(**found.as_dict()))


@router.post("/cancel", response_model=Envelope[LalalaiCancelOut],
             responses={**BAD_BODY, **_errors,
                        404: {"model": ErrorOut, "description": "No running task with this id"}})
async def cancel(body: LalalaiCancelRequest, request: Request, user: CurrentUser, session: SessionDep,
                 settings: SettingsDep) -> Envelope[LalalaiCancelOut]:
    """Cancels one lalal.ai task: the processing job running it ends `cancelled` (its partial files are
    removed) and lalal.ai stops the task."""
    return _out(await lalalai_account.cancel_task(session, request.app.state.events, user.id, settings,
                                                  body.task_id.strip()))


@router.post("/cancel-all", response_model=Envelope[LalalaiCancelOut], responses=_errors)
async def cancel_all(request: Request, user: CurrentUser, session: SessionDep,
                     settings: SettingsDep) -> Envelope[LalalaiCancelOut]:
    """Cancels every pending lalal.ai task of your key, and ends all your unfinished lalal.ai processing
    jobs (queued ones too) `cancelled`."""
    return _out(await lalalai_account.cancel_all(session, request.app.state.events, user.id, settings))
