"""Shared by the benches: a throwaway local stack and a process's wall time and peak RSS."""

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from pipeline.local.seaweed import find_free_base, free_port
from pipeline.local.stack import REPO_ROOT, LocalStack, StackConfig
from pipeline.settings import Settings


def run_measured(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of a command, its whole process tree included."""
    start = time.perf_counter()
    proc = psutil.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed ({proc.returncode})")
    return time.perf_counter() - start, peak / 2**20


@contextlib.contextmanager
def throwaway_stack(root: Path) -> Iterator[tuple[LocalStack, Settings]]:
    """Postgres and S3 in `root`, with settings for small CPU training and conversion."""
    stack = LocalStack(
        StackConfig(root=root / "stack", auth_port=free_port(), s3_base_port=find_free_base())
    )
    try:
        stack.start_database()
        stack.start_storage()
        yield (
            stack,
            stack.settings(
                dispatch="inline",
                min_dataset_seconds=20,
                model_cache_dir=str(root / "models"),
                work_dir=str(root / "work"),
            ),
        )
    finally:
        stack.stop()


def prepare_offline_models(env: dict[str, str]) -> None:
    """The tiny offline ContentVec, built by the same command the local stack runs."""
    subprocess.run(
        [sys.executable, "-m", "gpu", "models", "--offline"],
        env=env,
        check=True,
        capture_output=True,
        cwd=REPO_ROOT,
    )
