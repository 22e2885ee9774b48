"""Longer seeded fault runs than the suite's (tests/faults/test_chaos.py): the same stack,
workload, faults and invariants (tests/faults/), with more users and outages of 10-60 s.

    .venv/bin/python -m bench.chaos --seed 7 --users 4
    .venv/bin/python -m bench.chaos --seed 7 --faults pg_restart,worker_freeze --rounds 3

Each round uses seed, seed+1, …; each prints its report (faults fired and what they hit,
answers per route and status, job outcomes, broken invariants, orphans) as JSON and the run
exits non-zero when an invariant broke or a request got a 5xx other than a 503 with
Retry-After. `--report FILE` also writes the reports there.
"""

import argparse
import logging
import signal
import sys
import tempfile
from pathlib import Path

from tests.faults.chaos import FAULT_KINDS, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--faults", default=",".join(FAULT_KINDS), help="comma-separated")
    parser.add_argument("--short", action="store_true", help="the suite's 8-15 s outages")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # SIGTERM (a CI timeout) still stops the stack: its Postgres, SeaweedFS and tmpfs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = [k for k in args.faults.split(",") if k]
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
    reports = []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="svc-chaos-") as tmp:
            report = run(
                Path(tmp), args.seed + n, users=args.users, kinds=kinds, long=not args.short
            )
        print(report.to_json(), flush=True)
        reports.append(report)
    if args.report:
        args.report.write_text("[" + ",\n".join(r.to_json() for r in reports) + "]\n")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
