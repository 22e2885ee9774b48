"""The training work volume, swept: a directory stays only while the database says its job
may still use it (`training_work_to_keep`), so a person's recordings never outlive their
training, their cancel or their erasure.

Run where the volume is mounted: the retention cron, and after `DELETE /me` (the
`sweep_work` dispatch kind). Torch-free, so the web image runs it.

Beside the job directories, `<work_dir>/compile-cache/` holds torch's compiled training
kernels (`gpu.training.compiled.keep_compiled_in`), shared by every training container: code
and tensor shapes, nobody's data, so the sweep leaves it alone.
"""

import logging
import shutil
from pathlib import Path
from uuid import UUID

from pydantic import BaseModel

from pipeline.repository import Repository

log = logging.getLogger(__name__)

TRAINING = "training"  # `<work_dir>/training/<job id>/`, as gpu/training/job.py lays it out
COMPILE_CACHE = "compile-cache"  # `<work_dir>/compile-cache/torch-<version>/`


class WorkSweep(BaseModel):
    kept: int = 0
    removed: int = 0


def training_work_dir(work_dir: str | Path, job_id: UUID) -> Path:
    return Path(work_dir) / TRAINING / str(job_id)


def compile_cache_dir(work_dir: str | Path) -> Path:
    return Path(work_dir) / COMPILE_CACHE


def sweep_work_dirs(repo: Repository, work_dir: str | Path) -> WorkSweep:
    """Removes every training directory whose job may no longer use it. A name that is not a
    job id is not ours to judge and stays (logged)."""
    root = Path(work_dir) / TRAINING
    if not root.is_dir():
        return WorkSweep()
    found: dict[UUID, Path] = {}
    for path in root.iterdir():
        try:
            found[UUID(path.name)] = path
        except ValueError:
            log.warning("work volume: %s is not a job's directory; left alone", path)
    if not found:
        return WorkSweep()
    grace = int(repo.settings.work_dir_grace_days * 86400)
    keep = repo.training_work_to_keep(list(found), grace)
    sweep = WorkSweep(kept=len(keep & found.keys()))
    for job_id, path in found.items():
        if job_id not in keep:
            shutil.rmtree(path, ignore_errors=True)
            sweep.removed += 1
    if sweep.removed:
        log.info("work volume: removed %d training directories", sweep.removed)
    return sweep
