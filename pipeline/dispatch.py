"""Starting background work: `spawn(kind, target_id) -> call_id`, `cancel(call_id)`.

The caller commits the row first, then spawns; the row stays the source of truth, so a lost
spawn is found by the reaper or the reconciler. Implementations: `inline` runs the work in
the caller (tests), `thread` in a background pool (local stack); Modal's comes with the
deployment, the subprocess GPU worker with training.
"""

import logging
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

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(kind: str, target_id: UUID, future: "Future[object]") -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("%s %s failed: %s", kind, target_id, future.exception())
