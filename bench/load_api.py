"""The API as `bench/load.py` serves it: uvicorn, one process, plus a thread that writes the
process's database pool counters and CPU time to a JSON file twice a second, so the bench can
tell time spent waiting for a pooled connection from time spent in Python or in Postgres.

    python -m bench.load_api <port> <stats.json>   (with the stack's VC_* env)
"""

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import uvicorn

from pipeline import db

POOLS: list[db.PostgresDatabase] = []


def _track_pools() -> None:
    """Every `PostgresDatabase` the app opens (the service's and the worker login's)."""
    opened = db.PostgresDatabase.__init__

    def init(self: db.PostgresDatabase, *args: Any, **kwargs: Any) -> None:
        opened(self, *args, **kwargs)
        POOLS.append(self)

    db.PostgresDatabase.__init__ = init  # type: ignore[method-assign]


def _write_stats(path: Path) -> None:
    proc = psutil.Process()
    while True:
        times = proc.cpu_times()
        stats = {
            "t": time.time(),
            "cpu_s": times.user + times.system,
            "threads": proc.num_threads(),
            "pools": [pool.stats() for pool in list(POOLS)],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, path)
        time.sleep(0.5)


if __name__ == "__main__":
    _track_pools()
    threading.Thread(target=_write_stats, args=(Path(sys.argv[2]),), daemon=True).start()
    uvicorn.run(
        "endpoints.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
    )
