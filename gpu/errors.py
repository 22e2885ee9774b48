"""Job failures with the code and message a person sees, and the heartbeat both workers use."""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from pipeline.errors import PipelineError, Unavailable
from pipeline.repository import Repository
from schemas.jobs import JobKind, JobRow, Progress

log = logging.getLogger(__name__)


class JobFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JobCanceled(Exception):
    """The job row left `running` (canceled, reaped, or stopped by the GPU budget) while the
    worker was busy, or a retried worker claimed it since (STALE_ATTEMPT);
    `Heartbeat.stop_code` says which."""


# A newer attempt of the job was claimed (a retried worker): this one stops quietly and
# leaves the job, and its work dir, to the newer one.
STALE_ATTEMPT = "STALE_ATTEMPT"


class Heartbeat:
    """Progress merged over the last report, written with a heartbeat; the row says whether
    the worker may go on. Every report carries the attempt this worker claimed, so once a
    retried worker claims the job, this one is told to stop (STALE_ATTEMPT).

    A beat the database cannot take (a restart, a failover: `Unavailable`) is a missed beat,
    not the job's failure, for as long as the reaper would still wait for the next one
    (`VC_HEARTBEAT_TIMEOUT_SECONDS` since the last beat that got through); the next beat
    carries the merged progress and charges the GPU time since the last one, so nothing is
    lost or charged twice. Past that, the job is the reaper's and `Unavailable` is raised."""

    def __init__(self, repo: Repository, kind: JobKind, job_id: UUID) -> None:
        self.repo, self.kind, self.job_id = repo, kind, job_id
        self.progress: dict[str, Any] = {}
        self.stop_code: str | None = None
        self.attempt: int | None = None
        self._last_beat = time.monotonic()  # the last beat the database took
        self._lock = threading.Lock()  # the keep-alive thread beats beside the main one

    def claim(self) -> JobRow:
        """`claim_job`, remembering the attempt it counted for this worker's reports."""
        row = self.repo.claim_job(self.kind, self.job_id)
        self.attempt = row.attempt
        self._last_beat = time.monotonic()  # the claim stamps `heartbeat_at` too
        return row

    @contextmanager
    def fenced(self) -> Iterator[None]:
        """Around a finish: a newer attempt's claim turns into JobCanceled, not a failure."""
        try:
            yield
        except PipelineError as exc:
            if exc.code != STALE_ATTEMPT:
                raise
            self.stop_code = STALE_ATTEMPT
            raise JobCanceled from exc

    def fail(self, code: str, message: str) -> None:
        """`fail_job` for this attempt; a stale attempt leaves the job to the newer one."""
        try:
            self.repo.fail_job(self.kind, self.job_id, code, message, attempt=self.attempt)
        except PipelineError as exc:
            if exc.code != STALE_ATTEMPT:
                raise
            self.stop_code = STALE_ATTEMPT

    @contextmanager
    def kept_alive(self, every: float) -> Iterator[None]:
        """Heartbeats from a thread every `every` seconds while a step that reports nothing
        runs (feature extraction, the pitch range of a long input). Without them the reaper
        takes the silent worker for a dead one (WORKER_LOST) after
        `VC_HEARTBEAT_TIMEOUT_SECONDS`, on every retry alike, and the silent time goes
        uncharged. The step cannot be interrupted: a stop a beat reports is raised
        (`JobCanceled`) once it returns."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(every):
                try:
                    if not self.send({}):
                        return
                except Exception:  # a missed beat is retried at the next tick
                    log.warning("keep-alive heartbeat of %s failed", self.job_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
        if self.stop_code is not None:
            raise JobCanceled

    def send(self, progress: dict[str, Any]) -> bool:
        with self._lock:
            return self._send(progress)

    def _send(self, progress: dict[str, Any]) -> bool:
        merged = self.progress | progress
        Progress.model_validate(merged)  # refuses what the page cannot read, e.g. a new phase
        self.progress = merged
        # The heartbeat also charges the GPU time since the last one; a row that is no longer
        # running says why the worker must stop (canceled, reaped, GPU_BUDGET_EXHAUSTED).
        try:
            with self.fenced():
                row = self.repo.heartbeat_job(
                    self.kind, self.job_id, self.progress, attempt=self.attempt
                )
        except JobCanceled:
            return False
        except Unavailable:
            if self.seconds_left() <= 0:
                raise
            silent = time.monotonic() - self._last_beat
            log.warning(
                "heartbeat of %s missed (database unavailable for %.0fs)", self.job_id, silent
            )
            return True
        self._last_beat = time.monotonic()
        if row.status != "running":
            self.stop_code = row.error_code
            return False
        return True

    def seconds_left(self) -> float:
        """How much longer the reaper waits for this worker: the heartbeat timeout less the
        time since the last beat (or claim) the database took."""
        silent = time.monotonic() - self._last_beat
        return self.repo.settings.heartbeat_timeout_seconds - silent

    def require(self, **progress: Any) -> None:
        if not self.send(progress):
            raise JobCanceled
