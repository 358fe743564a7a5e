"""The runner and the state machine in-process, on a real SQLite database: what each kind of fault does,
monotonic progress that is announced only on change, and recovery of jobs whose worker is gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from core import jobs
from core.events import SqlEventLog
from core.lifecycle import startup
from core.progress import BadInput, JobCancelled, TransientError
from core.settings import Settings
from data.db import dispose_engine, session_scope
from data.files import FileStore
from data.models import Job, JobEvent, User, utcnow
from workers import registry
from workers.runner import DataLoop, JobRunner

KIND = "analysis"  # a kind whose real handler other modules own: replaced here for the test's duration


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DataLoop, Settings]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("runner"), job_retry_base_s=1.5)
    data = DataLoop().start()
    data.run(startup(settings))
    yield data, settings
    data.run(dispose_engine())
    data.stop()


@pytest.fixture
def runner(env: tuple[DataLoop, Settings]) -> Iterator[JobRunner]:
    data, settings = env
    enqueued: list[tuple[str, uuid.UUID, float | None]] = []
    run = JobRunner(settings, data, SqlEventLog(postgres=False), FileStore(settings.uploads_dir), "host:1:aa",
                    enqueue=lambda kind, job_id, delay: enqueued.append((kind, job_id, delay)))
    run.enqueued = enqueued  # type: ignore[attr-defined]
    # Register the real handlers now (the runner's first lookup would otherwise do it after a test has
    # swapped its body in, and put the real one back over it).
    import workers.handlers  # noqa: F401

    saved = registry._HANDLERS.get(KIND)
    yield run
    if saved is None:
        registry._HANDLERS.pop(KIND, None)
    else:
        registry._HANDLERS[KIND] = saved


async def _new_job(user_id: uuid.UUID | None = None) -> Job:
    async with session_scope() as session:
        if user_id is None:
            user = User(email=f"{uuid.uuid4().hex}@example.com")
            session.add(user)
            await session.flush()
            user_id = user.id
        return await jobs.create_job(session, SqlEventLog(postgres=False), user_id, KIND, None, {"x": 1})


async def _job(job_id: uuid.UUID) -> Job:
    async with session_scope() as session:
        return await session.get(Job, job_id)


async def _events(job_id: uuid.UUID) -> list[JobEvent]:
    async with session_scope() as session:
        return list((await session.exec(select(JobEvent).where(JobEvent.job_id == job_id)
                                        .order_by(JobEvent.seq))).all())


def handle(fn: Any) -> None:
    registry._HANDLERS[KIND] = fn


def test_progress_is_monotonic_and_announced_only_on_change(runner: JobRunner) -> None:
    def body(ctx: registry.JobContext) -> dict:
        ctx.progress(10, "Measuring")
        ctx.progress(5, "Measuring")  # never backwards: stays 10, nothing new to say
        ctx.progress(10.7, "Measuring")  # an integer: still 10
        ctx.progress(40)  # message kept
        ctx.progress(40, "Almost")
        return {"tempo": 120}

    handle(body)
    job = runner.data.run(_new_job())
    runner.run(job.id)
    done = runner.data.run(_job(job.id))
    assert done.status == "completed" and done.result == {"tempo": 120} and done.progress == 100
    events = runner.data.run(_events(job.id))
    progress = [(e.payload["status"], e.payload["progress"], e.payload["message"]) for e in events
                if e.event == "job:progress"]
    assert progress == [("queued", 0, "Waiting for a worker"), ("processing", 0, "Starting"),
                        ("processing", 10, "Measuring"), ("processing", 40, "Measuring"),
                        ("processing", 40, "Almost"), ("completed", 100, "Done")]
    assert events[-1].event == "job:completed"
    assert events[-1].payload == {"job_id": str(job.id), "job_type": KIND, "track_id": None,
                                  "result": {"tempo": 120}}


def test_bad_input_fails_at_once(runner: JobRunner) -> None:
    def body(ctx: registry.JobContext) -> dict:
        ctx.progress(30, "Decoding")
        raise BadInput("The file is not audio StemForge can read")

    handle(body)
    job = runner.data.run(_new_job())
    runner.run(job.id)
    failed = runner.data.run(_job(job.id))
    assert (failed.status, failed.attempts, failed.error) == ("failed", 1, "The file is not audio StemForge can read")
    assert runner.enqueued == []  # type: ignore[attr-defined]
    last = runner.data.run(_events(job.id))[-2:]
    assert [e.event for e in last] == ["job:progress", "job:failed"]
    assert last[0].payload["status"] == "failed" and last[0].payload["progress"] == 30  # not backwards


def test_transient_fault_is_requeued_with_exponential_backoff(runner: JobRunner) -> None:
    handle(lambda ctx: (_ for _ in ()).throw(TransientError("The model server is busy")))
    job = runner.data.run(_new_job())
    delays = []
    for attempt in (1, 2, 3):
        runner.run(job.id)
        row = runner.data.run(_job(job.id))
        assert row.attempts == attempt
        if attempt < 3:
            assert row.status == "queued" and "retrying in" in row.message
            delays.append(runner.enqueued[-1][2])  # type: ignore[attr-defined]
    assert delays == [1.5, 3.0]
    assert row.status == "failed" and row.error.startswith("The model server is busy. Gave up after 3 attempts")


def test_unexpected_error_fails_with_a_sentence_and_cleans_up(runner: JobRunner) -> None:
    def body(ctx: registry.JobContext) -> dict:
        ctx.job_dir.mkdir(parents=True)
        (ctx.job_dir / "vocals.wav").write_bytes(b"partial")
        extra = ctx.add_partial(ctx.store.root / "tmp-extra")
        extra.write_bytes(b"partial")
        raise KeyError("internal detail")

    handle(body)
    job = runner.data.run(_new_job())
    runner.run(job.id)
    row = runner.data.run(_job(job.id))
    assert row.status == "failed" and row.attempts == 1
    assert "internal detail" not in row.error and "KeyError" not in row.error and row.error.endswith(".")
    assert not runner.store.job_dir(job.id).exists() and not (runner.store.root / "tmp-extra").exists()


def test_cancel_stops_at_the_next_progress_point(runner: JobRunner) -> None:
    seen: list[str] = []

    def body(ctx: registry.JobContext) -> dict:
        ctx.job_dir.mkdir(parents=True)
        ctx.progress(10, "Working")
        ctx.run(_cancel(ctx.user_id, ctx.job_id))
        try:
            ctx.progress(20, "Working")
        except JobCancelled:
            seen.append("cancelled")
            raise
        return {}

    handle(body)
    job = runner.data.run(_new_job())
    runner.run(job.id)
    assert seen == ["cancelled"]
    row = runner.data.run(_job(job.id))
    assert row.status == "cancelled" and row.progress == 10
    assert not runner.store.job_dir(job.id).exists()


async def _cancel(user_id: uuid.UUID, job_id: uuid.UUID) -> None:
    async with session_scope() as session:
        await jobs.cancel_job(session, SqlEventLog(postgres=False), user_id, job_id)


async def _set_running(job_id: uuid.UUID, worker_id: str, attempts: int, beat_age_s: float) -> None:
    async with session_scope() as session:
        job = await session.get(Job, job_id)
        job.status, job.worker_id, job.attempts = "processing", worker_id, attempts
        job.heartbeat_at = utcnow() - timedelta(seconds=beat_age_s)
        session.add(job)
        await session.commit()


async def _recover(gone: set[str]) -> list[jobs.Recovered]:
    async with session_scope() as session:
        return await jobs.recover_orphans(session, SqlEventLog(postgres=False), stale_after_s=30, max_attempts=3,
                                          worker_gone=lambda wid: wid in gone)


def test_recovery_requeues_or_fails_jobs_whose_worker_is_gone(runner: JobRunner) -> None:
    run = runner.data.run
    stale, dead, alive, exhausted = (run(_new_job()) for _ in range(4))
    run(_set_running(stale.id, "elsewhere:7:bb", 1, beat_age_s=120))  # silent for 2 minutes
    run(_set_running(dead.id, "host:99:cc", 1, beat_age_s=1))  # fresh stamp, but its process is dead
    run(_set_running(alive.id, "elsewhere:8:dd", 1, beat_age_s=1))  # busy elsewhere: leave it
    run(_set_running(exhausted.id, "host:98:ee", 3, beat_age_s=120))
    found = {r.job_id: r.requeued for r in run(_recover({"host:99:cc", "host:98:ee"}))}
    assert found == {stale.id: True, dead.id: True, exhausted.id: False}
    assert run(_job(stale.id)).status == run(_job(dead.id)).status == "queued"
    assert run(_job(alive.id)).status == "processing"
    row = run(_job(exhausted.id))
    assert row.status == "failed" and row.error == jobs.WORKER_STOPPED
    assert run(_recover(set())) == []  # nothing left to do: idempotent


def test_recovered_job_cannot_be_overwritten_by_its_old_worker(runner: JobRunner) -> None:
    job = runner.data.run(_new_job())
    claim = runner.db_log(jobs.start_attempt, job.id, "elsewhere:5:ff")
    runner.data.run(_set_running(job.id, "elsewhere:5:ff", 1, beat_age_s=120))
    runner.data.run(_recover(set()))
    # The old worker wakes up and reports: refused, so it stops instead of clobbering the re-queued job.
    assert runner.db_log(jobs.report_progress, claim, 50, "late") is False
    assert runner.db_log(jobs.complete, claim, {}) is False
    assert runner.data.run(_job(job.id)).status == "queued"


def test_partial_file_removal_stays_inside_uploads(tmp_path: Path) -> None:
    """A handler declaring a path outside the uploads dir never gets it deleted."""
    from workers.runner import _remove_inside

    store = FileStore(tmp_path / "uploads")
    outside = tmp_path / "keep.txt"
    outside.write_text("x")
    _remove_inside(store, outside)
    assert outside.exists()
