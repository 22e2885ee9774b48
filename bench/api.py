"""API latency and throughput next to a bare FastAPI `/ping`, measured in the same run.

Starts a throwaway local stack (Postgres, SeaweedFS, token issuer) in a temp dir, serves the
real API and the bare app with the same uvicorn command, drives both with N concurrent
clients, and prints p50/p99/req/s per endpoint and the ratio to the baseline. Also prints the
web app's cold import time.

    .venv/bin/python bench/api.py --clients 16 --seconds 5
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from pipeline.local.seaweed import find_free_base, free_port
from pipeline.local.stack import REPO_ROOT, LocalStack, StackConfig


def serve(app: str, port: int, env: dict[str, str], factory: bool) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning"] + (["--factory"] if factory else [])  # fmt: skip
    proc = subprocess.Popen(args, env=os.environ | env, cwd=REPO_ROOT)
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{app} did not start")


async def load(
    make_request: Callable[[httpx.AsyncClient], object], clients: int, seconds: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await make_request(client)  # type: ignore[misc]
                latencies.append(time.perf_counter() - start)
                errors += response.status_code >= 400  # type: ignore[attr-defined]

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, errors


def summarize(name: str, latencies: list[float], errors: int, seconds: float) -> float:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    rps = len(ordered) / seconds
    print(f"{name:<36} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {rps:8.1f} req/s   errors {errors}")
    return rps


def cold_import_seconds(runs: int = 5) -> float:
    code = (
        "import time; t = time.perf_counter(); import endpoints.app as a; a.create_app(); "
        "print(time.perf_counter() - t)"
    )
    command = [sys.executable, "-c", code]
    outputs = [
        subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout
        for _ in range(runs)
    ]
    return statistics.median(float(out) for out in outputs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig(root=Path(tmp), auth_port=free_port(), s3_base_port=find_free_base())
        stack = LocalStack(config)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            stack.start_database()
            stack.start_storage()
            stack.start_auth()
            api_port, ping_port = free_port(), free_port()
            # Uploads are unlimited here: the bench measures the path, not the per-profile cap.
            env = stack.env() | {"VC_MAX_DATASET_FILES": "100000000"}
            procs.append(serve("endpoints.app:create_app", api_port, env, factory=True))
            procs.append(serve("bench.ping_app:app", ping_port, {}, factory=False))
            api, ping = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ping_port}"
            auth = {"Authorization": f"Bearer {stack.dev_token('bench@localhost')}"}
            profile = httpx.post(f"{api}/profiles", json={"name": "bench"}, headers=auth).json()
            upload = {"filename": "take.wav", "content_type": "audio/wav", "size_bytes": 1000}

            cases = {
                "GET /ping (bare FastAPI)": lambda c: c.get(f"{ping}/ping"),
                "GET /profiles": lambda c: c.get(f"{api}/profiles", headers=auth),
                "GET /quota": lambda c: c.get(f"{api}/quota", headers=auth),
                "POST /profiles/{id}/dataset/uploads": lambda c: c.post(
                    f"{api}/profiles/{profile['id']}/dataset/uploads", json=upload, headers=auth
                ),
            }
            print(f"{args.clients} concurrent clients, {args.seconds:.0f} s per endpoint\n")
            rates = {}
            for name, request in cases.items():
                latencies, errors = asyncio.run(load(request, args.clients, args.seconds))
                rates[name] = summarize(name, latencies, errors, args.seconds)
            baseline = rates.pop("GET /ping (bare FastAPI)")
            print("\nthroughput relative to the bare /ping:")
            for name, rate in rates.items():
                print(f"  {name:<36} {rate / baseline:6.2f}x")
            print(f"\nweb app cold import + create_app: {cold_import_seconds() * 1000:.0f} ms")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            stack.stop()


if __name__ == "__main__":
    main()
