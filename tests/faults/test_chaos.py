"""One seeded fault run on a whole local stack (tests/faults/chaos.py): a person uploads a
dataset, trains a tiny model, converts, cancels and deletes over HTTP while every fault kind
fires once (Postgres restarted and its sessions killed, SeaweedFS restarted and stalled, the
relay down, the API SIGKILLed, a worker SIGKILLed in a seeded phase and one frozen past the
reaper's timeout, the work volume full). Then the invariants, from the database and the
bucket: see tests/faults/invariants.py. `bench/chaos.py` runs longer and more users.

`SVC_CHAOS_SEED` picks another seed (the report names the one it used).
"""

import os
from pathlib import Path

import pytest

from tests.faults.chaos import FAULT_KINDS, run

pytestmark = [pytest.mark.faults, pytest.mark.slow]
SEED = int(os.environ.get("SVC_CHAOS_SEED", "3"))


@pytest.mark.timeout(1800)
def test_every_fault_kind_once_and_nothing_is_lost(tmp_path: Path) -> None:
    report = run(tmp_path / "chaos", SEED, users=1, kinds=list(FAULT_KINDS), job_timeout=900)
    print(report.to_json())
    assert not report.violations, report.violations  # no 500, every 503 with Retry-After
    assert not report.broken, report.broken
    assert not report.freeze_overwrites, report.freeze_overwrites
    fired = {f.kind for f in report.faults if f.fired}
    # the faults that need nothing but time always fire; the worker ones need a worker
    assert fired >= {"pg_restart", "pg_terminate", "s3_restart", "s3_stall", "relay_down",
                     "api_kill"}, report.faults  # fmt: skip
