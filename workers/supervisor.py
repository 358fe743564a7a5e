"""Keeping a child process alive: ``serve`` supervises its embedded worker, ``worker --workers N`` its N.

A child that exits is started again (after a short pause that grows while it keeps crashing at once),
until :meth:`Supervisor.stop` is called. The children watch their parent too (``--parent-pid``), so a
parent killed without a chance to clean up leaves no orphan worker behind.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Sequence

log = logging.getLogger("stemforge.supervisor")


class Supervisor:
    def __init__(self, argv: Sequence[str], *, name: str = "worker", env: dict[str, str] | None = None,
                 min_restart_s: float = 0.5, max_restart_s: float = 5.0, healthy_after_s: float = 10.0) -> None:
        self.argv = list(argv)
        self.name = name
        self.env = env
        self.min_restart_s = min_restart_s
        self.max_restart_s = max_restart_s
        self.healthy_after_s = healthy_after_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"supervise-{name}", daemon=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def _loop(self) -> None:
        delay = self.min_restart_s
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                self.proc = subprocess.Popen(self.argv, env=self.env)
            started = time.monotonic()
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            ran = time.monotonic() - started
            delay = self.min_restart_s if ran >= self.healthy_after_s else min(self.max_restart_s, delay * 2)
            self.restarts += 1
            log.warning("%s (pid %s) exited with code %s after %.0f s; restarting in %.1f s",
                        self.name, self.proc.pid, code, ran, delay)
            self._stopping.wait(delay)

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the child to finish (SIGTERM: running jobs go back to the queue), kill it if it lingers."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %s) did not stop in %.0f s; killing it", self.name, proc.pid, timeout)
                proc.kill()
                proc.wait()
        self._thread.join(timeout=5)
