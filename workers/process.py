"""A worker process: Huey consumers for every job kind, heartbeats, and recovery of orphaned jobs.

``python main.py worker`` runs :func:`run_worker`; ``--workers N`` (N > 1) runs :func:`run_pool`, which
supervises N such processes. Each process starts one Huey consumer per job kind, with that kind's
``queue_concurrency`` worker threads, and then loops on its own duties:

* heartbeat: stamp ``Job.heartbeat_at`` of the jobs it runs every ``worker_heartbeat_s``;
* recovery, at start-up and every ``worker_recovery_interval_s``: a running job whose worker is gone (a
  dead process on this host, or no heartbeat for ``worker_stale_after_s`` from anywhere) is re-queued
  while attempts remain, else failed with "worker stopped";
* shutdown on SIGTERM/SIGINT: running jobs stop at their next progress point and go back to the queue.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from huey.consumer import Consumer

from core import jobs
from core.events import event_log_from_settings
from core.lifecycle import startup
from core.settings import Settings
from data.db import dispose_engine, session_scope
from data.files import FileStore
from workers import tasks
from workers.huey_app import concurrency, queue_for
from workers.runner import DataLoop, JobRunner
from workers.supervisor import Supervisor

log = logging.getLogger("stemforge.worker")

MAIN = Path(__file__).resolve().parent.parent / "main.py"


def new_worker_id() -> str:
    """host:pid:nonce. The nonce tells this process from an earlier one that had the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: as good as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def worker_gone_checker(own_id: str):  # noqa: ANN201
    """Whether a worker id names a process that is certainly dead. Only decidable on this host; elsewhere
    the heartbeat decides."""
    host = socket.gethostname()
    own_pid = os.getpid()

    def gone(worker_id: str) -> bool:
        parts = worker_id.split(":")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or worker_id == own_id:
            return False
        pid = int(parts[1])
        return pid == own_pid or _pid_gone(pid)

    return gone


def recover(runner: JobRunner) -> int:
    found = runner.data.run(_recover(runner))
    for item in found:
        if item.requeued:
            runner.enqueue(item.kind, item.job_id, None)
        log.warning("job %s had lost its worker: %s", item.job_id, "re-queued" if item.requeued else "failed")
    return len(found)


async def _recover(runner: JobRunner) -> list[jobs.Recovered]:
    settings = runner.settings
    async with session_scope() as session:
        return await jobs.recover_orphans(
            session, runner.events, stale_after_s=settings.worker_stale_after_s,
            max_attempts=settings.job_max_attempts, worker_gone=worker_gone_checker(runner.worker_id))


def run_worker(settings: Settings, parent_pid: int | None = None) -> int:
    data = DataLoop().start()
    data.run(startup(settings))
    events = event_log_from_settings(settings)
    runner = JobRunner(settings, data, events, FileStore(settings.uploads_dir), new_worker_id())
    tasks.set_runner(runner)
    recover(runner)

    consumers = []
    for kind in jobs.KINDS:
        tasks.task_for(kind)
        consumers.append(Consumer(queue_for(kind), workers=concurrency(settings, kind), periodic=False,
                                  initial_delay=0.05, backoff=1.5, max_delay=settings.queue_poll_max_s,
                                  worker_type="thread",
                                  shutdown_timeout=30))
    for consumer in consumers:
        consumer.start()

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("worker %s: signal %s, stopping", runner.worker_id, signum)
        stop.set()

    # After the consumers' start(): their handlers would only flag their own loops, which we do not run.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info("worker %s ready: %s", runner.worker_id,
             ", ".join(f"{k}x{concurrency(settings, k)}" for k in jobs.KINDS))

    next_beat = next_sweep = time.monotonic()
    while not stop.wait(0.2):
        now = time.monotonic()
        if parent_pid is not None and os.getppid() != parent_pid:
            log.warning("worker %s: parent process is gone; stopping", runner.worker_id)
            break
        try:
            if now >= next_beat:
                next_beat = now + settings.worker_heartbeat_s
                runner.beat()
            if now >= next_sweep:
                next_sweep = now + settings.worker_recovery_interval_s
                recover(runner)
        except Exception:  # the database may be briefly unavailable; keep running and try again
            log.exception("worker %s: heartbeat or recovery failed", runner.worker_id)

    runner.stopping.set()
    for consumer in consumers:
        consumer.stop(graceful=True)
    tasks.set_runner(None)
    data.run(events.close())
    data.run(dispose_engine())
    data.stop()
    log.info("worker %s stopped", runner.worker_id)
    return 0


def run_pool(settings: Settings, workers: int) -> int:
    """N worker processes, each restarted if it dies, until SIGTERM/SIGINT."""
    argv = [sys.executable, str(MAIN), "worker", "--workers", "1", "--parent-pid", str(os.getpid())]
    sups = [Supervisor(argv, name=f"worker-{i + 1}").start() for i in range(workers)]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    for sup in sups:
        sup.stop()
    return 0
