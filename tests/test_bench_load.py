"""`bench/load.py --small` runs end to end (a few users, faults off and one fault), so the load
bench never rots: every figure its table and JSON promise is there. No figure is asserted,
only that each was measured, and that the run found the database agreeing with the answers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parent.parent


def test_the_load_bench_runs_small(tmp_path) -> None:
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.load", "--small", "--json", str(out)],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=540,
    )
    assert run.returncode == 0, (run.stdout.decode()[-3000:], run.stderr.decode()[-3000:])
    found = json.loads(out.read_text())
    assert found["small"] is True
    runs = {r["fault"]: r for r in found["runs"]}
    assert set(runs) == {"none", "pg_terminate"}
    for r in runs.values():
        assert r["served"] > 0 and r["problems"] == []
        assert r["server_errors_outside_fault_window"] == 0
        assert {"GET /quota", "POST /profiles/{id}/dataset/uploads"} <= r["routes"].keys()
        assert all(route["p99_ms"] >= route["p50_ms"] > 0 for route in r["routes"].values())
        diagnosis = r["diagnosis"]
        assert diagnosis["pool"]["db_calls"] > 0
        assert {"api_cpu_percent_of_one_core", "api_side_p99_ms", "client_loop_lag_p99_ms"} <= (
            diagnosis.keys()
        )
    assert runs["none"]["recovery_s"] is None
    assert runs["pg_terminate"]["recovery_s"] >= 0
    assert "pool wait%" in run.stdout.decode()  # the table
