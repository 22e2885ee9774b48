"""Stopping the local stack's child processes: politely first, then for sure."""

import subprocess
from typing import Any


def stop_process(process: "subprocess.Popen[Any] | None", timeout: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
