"""The real API, except that it SIGKILLs itself where a GPU worker would be spawned: the
moment between a job row committing and its worker starting, which a crash, an OOM kill or
a redeploy can hit in production and a timed kill from outside cannot aim at.

    python -m tests.faults.api_dies_before_spawn <port>   (with the stack's VC_* env)
"""

import os
import signal
import sys
from typing import NoReturn
from uuid import UUID

import uvicorn

from pipeline import dispatch


def _die(self: dispatch.SubprocessDispatcher, kind: str, target_id: UUID) -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


if __name__ == "__main__":
    dispatch.SubprocessDispatcher.spawn = _die  # type: ignore[method-assign]
    uvicorn.run(
        "endpoints.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
    )
