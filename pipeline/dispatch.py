"""Starting background work: `spawn(kind, target_id) -> call_id`, `cancel(call_id)`.

The caller commits the row first, then spawns; the row stays the source of truth, so a lost
spawn is found by the reaper or the reconciler. Here: `InlineDispatcher` runs the work in the
caller (tests), `ThreadDispatcher` in a background pool (the probe on the local stack),
`SubprocessDispatcher` as `python -m gpu …` child processes (local GPU work) and
`RoutingDispatcher` picks one per kind; `pipeline.dispatch_modal.ModalDispatcher` spawns the
deployed Modal functions.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol
from uuid import UUID, uuid4

log = logging.getLogger(__name__)
Runner = Callable[[UUID], object]


class Dispatcher(Protocol):
    def spawn(self, kind: str, target_id: UUID) -> str: ...

    def cancel(self, call_id: str) -> None: ...


class InlineDispatcher:
    def __init__(self, runners: dict[str, Runner]) -> None:
        self.runners = runners

    def spawn(self, kind: str, target_id: UUID) -> str:
        self.runners[kind](target_id)
        return f"inline-{uuid4()}"

    def cancel(self, call_id: str) -> None:
        return None


class ThreadDispatcher:
    def __init__(self, runners: dict[str, Runner], workers: int = 2) -> None:
        self.runners = runners
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dispatch")
        self._calls: dict[str, Future[object]] = {}

    def spawn(self, kind: str, target_id: UUID) -> str:
        runner = self.runners[kind]
        call_id = f"thread-{uuid4()}"
        future = self._pool.submit(runner, target_id)
        future.add_done_callback(lambda f: _log_failure(kind, target_id, f))
        self._calls[call_id] = future
        return call_id

    def cancel(self, call_id: str) -> None:
        future = self._calls.pop(call_id, None)
        if future is not None:
            future.cancel()

    def prepare(self, warm: Callable[[], None]) -> None:
        """Runs `warm` once on each worker thread, in the background (per-thread state such
        as the probe's voice model is ready before the first real call)."""
        for _ in range(self.workers):
            self._pool.submit(warm).add_done_callback(
                lambda f: f.exception() and log.warning("warm-up failed: %s", f.exception())
            )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(kind: str, target_id: UUID, future: "Future[object]") -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("%s %s failed: %s", kind, target_id, future.exception())


class SubprocessDispatcher:
    """Runs GPU work as `python -m gpu <kind> <id>` in its own process group, so it behaves
    like a separate container: it can crash, be killed, and be retried on its own."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = os.environ | (env or {})
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, kind: str, target_id: UUID) -> str:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter, a fixed module, a UUID
            [sys.executable, "-m", "gpu", kind, str(target_id)],
            env=self.env,
            start_new_session=True,
        )
        call_id = f"local-{proc.pid}"
        self._procs[call_id] = proc
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it when it ends
        return call_id

    def cancel(self, call_id: str) -> None:
        proc = self._procs.get(call_id)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)


class RoutingDispatcher:
    """Sends each kind to the dispatcher that runs it (probe in-process, GPU work outside)."""

    def __init__(self, routes: dict[str, Dispatcher]) -> None:
        self.routes = routes
        self._owner: dict[str, Dispatcher] = {}

    def spawn(self, kind: str, target_id: UUID) -> str:
        if kind not in self.routes:
            raise ValueError(f"no worker for {kind!r}")
        call_id = self.routes[kind].spawn(kind, target_id)
        self._owner[call_id] = self.routes[kind]
        return call_id

    def cancel(self, call_id: str) -> None:
        owner = self._owner.get(call_id)
        if owner is not None:
            owner.cancel(call_id)
