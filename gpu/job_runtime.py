"""The one runtime every GPU job runs on: a job kind writes only its phases.

`JobRun.run()` owns what every kind shares, in this order: claim the row (the attempt it
counts fences an older worker out), a scratch dir (and, for a kind that resumes, a work dir on
the volume), the phases with their heartbeats (each one charges the GPU time since the last
and says whether the worker may go on), then the end: finished by the kind's own finish,
failed with a readable code (`describe_failure`), or stopped quietly (canceled, reaped,
out of GPU budget, or claimed since by a newer attempt), and the dirs removed on every exit
path, Modal's `InputCancellation` and the local `Terminated` (BaseExceptions) included.

A new kind (say `instant`), once its SQL and its `schemas.jobs.JobKind` name exist:

    # here, in KINDS:  "instant": JobKindSpec("instant", "The conversion",
    #                                         finish=Repository.finish_instant),
    class InstantRun(JobRun):
        spec = KINDS["instant"]

        def phases(self, job: InstantJobRow) -> None:
            self.phase("download", percent=0)  # a heartbeat; JobCanceled once the row stopped
            source = self.scratch / "input.wav"  # scratch: removed whatever way the run ends
            ...
            with self.heartbeat.kept_alive(self.settings.heartbeat_seconds):
                ...  # a step that reports nothing for longer than a heartbeat
            progress = self.progress("convert")  # progress(fraction) -> False once stopped
            ...
            self.phase("upload", percent=100)
            self.finish(output_key, seconds)  # the kind's finish, fenced by the attempt

    status = InstantRun(repo, storage, settings, job_id).run()

`run()` returns "succeeded", "canceled" (the person's cancel, or a newer attempt took over),
"failed", or the status of a row it found not running (nothing done). A phase raises
`JobFailure(code, message)` for a failure the person should read; any other exception is
recorded as INTERNAL (or OUT_OF_MEMORY) with the kind's wording. The worker's process exit
(gpu/__main__.py) is 0 for "succeeded" and "canceled".
"""

import errno
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

from gpu.errors import STALE_ATTEMPT, Heartbeat, JobCanceled, JobFailure
from pipeline.errors import PipelineError, Unavailable
from pipeline.repository import Repository
from pipeline.settings import Settings
from pipeline.storage import Storage
from pipeline.text import finish_text
from schemas.jobs import JobKind, JobRow, Phase

log = logging.getLogger(__name__)

# Stops after which a resumable kind's work dir (its last checkpoint) stays on the volume:
# a budget stop may be retried within `work_dir_grace_days`; a newer attempt owns the dir.
KEEPS_CHECKPOINTS = {"GPU_BUDGET_EXHAUSTED", STALE_ATTEMPT}
# Stops that end the run "canceled" (no code: the phases found the job gone themselves);
# any other (WORKER_LOST, GPU_BUDGET_EXHAUSTED) is the row's failure, so "failed".
QUIET_STOPS = {None, "CANCELED", STALE_ATTEMPT}
# A dir with less free space than this (the smaller of a share of its size and a few MB) when
# a job failed is a full disk (`disk_full`).
FULL_FRACTION, FULL_BYTES = 0.01, 16 * 2**20
# A finish the database could not take is retried after these waits (doubling up to the cap).
FINISH_FIRST_DELAY, FINISH_MAX_DELAY = 0.5, 10.0


@dataclass(frozen=True)
class JobKindSpec:
    """What the runtime needs to know of one kind.

    `finish(repo, job_id, *outcome, attempt=...)` is the kind's SQL finish. Claim, heartbeat
    (with the GPU charge) and fail are one SQL function for every kind already (`Heartbeat`
    calls them with the kind's name); once the job machine has one generic finish too, this
    field is the one place that changes."""

    name: JobKind
    noun: str  # how a failure message names the job: "Training", "The conversion"
    finish: Callable[..., JobRow]
    internal_message: str | None = None  # INTERNAL's wording when the default's is wrong
    keeps_work: bool = False  # a work dir on the volume that a retried attempt resumes from


# The worker side of every job kind, in one table.
KINDS: dict[str, JobKindSpec] = {
    "training": JobKindSpec("training", "Training", Repository.finish_training, keeps_work=True),
    "conversion": JobKindSpec("conversion", "The conversion", Repository.finish_conversion),
    "separation": JobKindSpec(
        "separation",
        "Separation",
        Repository.finish_separation,
        # no quota to refund: say how to try again instead
        internal_message="Separating the song failed unexpectedly. Try again.",
    ),
    "text": JobKindSpec("text", "Speaking the text", finish_text),
}


def disk_full(exc: BaseException, dirs: list[Path]) -> bool:
    """Whether `exc` is the worker's disk running out: ENOSPC (or a quota's EDQUOT) anywhere
    in its chain, or, for writers that hide the errno (torch.save raises a bare
    RuntimeError "file write failed"), one of `dirs` left with (next to) no free space."""
    seen: BaseException | None = exc
    for _ in range(16):  # causes and contexts, not forever
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    for path in dirs:
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if usage.free < min(usage.total * FULL_FRACTION, FULL_BYTES):
            return True
    return False


def describe_failure(exc: Exception, noun: str, full: bool = False) -> tuple[str, str]:
    """The code and message recorded on a job that raised `exc` (`noun`: "Training", …);
    `full`: the worker's disk ran out (`disk_full`)."""
    import torch

    if isinstance(exc, JobFailure):
        return exc.code, exc.message
    if full:
        return "WORK_VOLUME_FULL", f"{noun} ran out of disk space on the worker. Try again."
    if isinstance(exc, MemoryError | torch.cuda.OutOfMemoryError):
        return "OUT_OF_MEMORY", f"{noun} ran out of memory. Try a smaller input or preset."
    return "INTERNAL", f"{noun} failed unexpectedly. Your quota was refunded; please try again."


class JobRun:
    """One job of the kind `spec`, from claim to its end; subclasses write `phases`."""

    spec: ClassVar[JobKindSpec]

    def __init__(
        self, repo: Repository, storage: Storage, settings: Settings, job_id: UUID
    ) -> None:
        self.repo, self.storage, self.settings, self.job_id = repo, storage, settings, job_id
        self.heartbeat = Heartbeat(repo, self.spec.name, job_id)
        # `<work_dir>/<kind>/<job id>/`: pipeline/work_dirs.py sweeps what no job may use.
        self.work = Path(settings.work_dir) / self.spec.name / str(job_id)
        self.scratch = Path()  # set while the phases run; removed on every exit path

    def phases(self, job: Any) -> None:
        """The kind's own work, ending with `self.finish(...)`."""
        raise NotImplementedError

    def phase(self, name: Phase, **progress: Any) -> None:
        """A heartbeat with the phase the page shows; JobCanceled once the row stopped."""
        self.heartbeat.require(phase=name, **progress)

    def progress(self, phase: Phase, every: float = 0.0) -> Callable[[float], bool]:
        """A `progress(fraction)` callback for a long step: percent and ETA on a heartbeat
        (at most one per `every` seconds, and always the last), False once the row has left
        `running`, so the step stops itself."""
        started = last = time.monotonic()
        first = True

        def report(done: float) -> bool:
            nonlocal last, first
            now = time.monotonic()
            done = min(max(done, 0.0), 1.0)
            if not first and now - last < every and done < 1:
                return True
            first, last, elapsed = False, now, now - started
            eta = round(elapsed / done * (1 - done), 1) if done > 0 else None
            return self.heartbeat.send(
                {"phase": phase, "percent": round(100 * done, 1), "eta_s": eta}
            )

        return report

    def finish(self, *outcome: Any) -> JobRow:
        """The kind's finish for this attempt; a newer attempt's claim stops this one quietly.

        By now the output (the model, the audio) is in the bucket: a database that is down at
        this moment (a restart, a failover) must not turn the whole run into a failure. The
        finish is retried with backoff while the reaper would still wait for this worker
        (`VC_HEARTBEAT_TIMEOUT_SECONDS` since the last beat the database took, as a missed
        heartbeat is); past that the job is the reaper's and `Unavailable` is raised. A retry
        of a finish that did commit (the answer was lost) finds the row finished and returns
        it, so nothing is recorded or charged twice."""
        delay = FINISH_FIRST_DELAY
        while True:
            try:
                with self.heartbeat.fenced():
                    return self.spec.finish(
                        self.repo, self.job_id, *outcome, attempt=self.heartbeat.attempt
                    )
            except Unavailable:
                left = self.heartbeat.seconds_left()
                if left <= 0:
                    raise
                log.warning(
                    "%s %s: finish failed (database unavailable); retrying in %.1fs",
                    self.spec.name,
                    self.job_id,
                    min(delay, left),
                )
                time.sleep(min(delay, left))
                delay = min(delay * 2, FINISH_MAX_DELAY)

    def run(self) -> str:
        """Whatever way the run ends (success, failure, a cancel, Modal's
        `InputCancellation`, or the person's erasure while it ran) the scratch dir goes, and
        so does the work dir with the recordings in it, unless the job may still resume
        there: budget-stopped (kept for `work_dir_grace_days`), claimed since by a newer
        attempt (STALE_ATTEMPT: the dir is that attempt's), or still running (a preempted
        container's retry). The sweep (`pipeline.work_dirs`) removes the rest."""
        name = self.spec.name
        job = self.heartbeat.claim()
        if job.status != "running":
            log.info("%s %s is %s; nothing to do", name, self.job_id, job.status)
            return job.status
        keep = full = False
        try:
            with tempfile.TemporaryDirectory(
                dir=self.settings.scratch_dir, prefix=f"{name}-"
            ) as tmp:
                self.scratch = Path(tmp)
                try:
                    self.phases(job)
                except Exception as exc:
                    # asked before the scratch dir (and what filled it) is removed
                    full = disk_full(exc, [self.scratch, self.work])
                    raise
            return "succeeded"
        except JobCanceled:
            code = self.heartbeat.stop_code
            log.info("%s %s stopped: %s", name, self.job_id, code or "canceled")
            keep = code in KEEPS_CHECKPOINTS
            return "canceled" if code in QUIET_STOPS else "failed"
        except Exception as exc:  # every failure ends the job with a readable code
            code, message = describe_failure(exc, self.spec.noun, full)
            if code == "INTERNAL" and self.spec.internal_message:
                message = self.spec.internal_message
            log.exception("%s %s failed: %s", name, self.job_id, code)
            self._fail(code, message)
            keep = self.heartbeat.stop_code == STALE_ATTEMPT  # the newer attempt's dir
            return "canceled" if keep else "failed"
        except BaseException:  # interrupted from outside: InputCancellation, Terminated
            keep = self.spec.keeps_work and self._may_resume()
            raise
        finally:
            if not (self.spec.keeps_work and keep):
                shutil.rmtree(self.work, ignore_errors=True)

    def _fail(self, code: str, message: str) -> None:
        """Ends the job (for this attempt); a job that is gone (its person erased their data)
        has nothing left to end."""
        try:
            self.heartbeat.fail(code, message)
        except PipelineError as gone:
            if gone.code != "NOT_FOUND":
                raise
            log.info("%s %s was erased while it ran", self.spec.name, self.job_id)

    def _may_resume(self) -> bool:
        """Keep the work dir only while this attempt may still resume there (the row still
        running: a preemption is retried) or another owns it; canceled, ended or erased, it
        goes. If the database cannot say, keep it: the sweep decides later."""
        try:
            running = self.heartbeat.send({})
        except PipelineError as failed:
            return failed.code != "NOT_FOUND"
        except Exception:
            log.exception("%s %s: could not ask whether it may resume", self.spec.name, self.job_id)
            return True
        return running or self.heartbeat.stop_code in KEEPS_CHECKPOINTS
