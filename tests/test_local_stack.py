"""The README's main command: `svc-local up` starts everything, Ctrl-C stops everything,
and a second start reuses the data."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from pipeline.local.seaweed import GRPC_OFFSET, SeaweedPorts, find_free_base, free_port


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _up(root: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    """Started as a non-interactive shell's background job starts it (CI, `make dev &`):
    with SIGINT inherited ignored, which Ctrl-C must still override."""
    args = [sys.executable, "-m", "pipeline.local", "up", "--data-dir", str(root)]
    for name, port in ports.items():
        args += [f"--{name}", str(port)]
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
        preexec_fn=_ignore_sigint,
    )


def _wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/health", timeout=1).json()["status"] == "ok":
                return
        except (httpx.HTTPError, ValueError):
            time.sleep(0.3)
    raise AssertionError("the local stack did not become healthy")


def _stop(proc: subprocess.Popen[str]) -> str:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [p.pid for p in alive]
    return out


def test_up_serves_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    ports = {
        "api-port": free_port(),
        "web-port": free_port(),
        "auth-port": free_port(),
        "s3-base-port": find_free_base(30000),
    }
    api = f"http://127.0.0.1:{ports['api-port']}"

    first = _up(tmp_path, ports)
    _wait_healthy(api, first)
    token_file = tmp_path / "dev-token"
    for _ in range(100):  # written just after the API turns healthy
        if token_file.exists() and token_file.read_text():
            break
        time.sleep(0.1)
    token = token_file.read_text()
    auth = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{api}/profiles", json={"name": "kept"}, headers=auth)
    assert created.status_code == 201
    assert httpx.get(f"http://127.0.0.1:{ports['web-port']}/").status_code == 200
    out = _stop(first)
    assert "Stopping" in out

    second = _up(tmp_path, ports)
    _wait_healthy(api, second)
    names = [p["name"] for p in httpx.get(f"{api}/profiles", headers=auth).json()]
    assert names == ["kept"]
    _stop(second)


@pytest.mark.parametrize("which", ["filer gRPC", "api"])
def test_up_refuses_to_start_when_a_port_is_taken(tmp_path: Path, which: str) -> None:
    """A port held by another program (the filer's gRPC port, which only the relay's tail
    uses, went unnoticed) stops `svc-local up` before anything starts, naming the port."""
    ports = {
        "api-port": free_port(),
        "web-port": free_port(),
        "auth-port": free_port(),
        "s3-base-port": find_free_base(30000),
    }
    filer = SeaweedPorts.from_base(ports["s3-base-port"]).filer
    held = filer + GRPC_OFFSET if which == "filer gRPC" else ports["api-port"]
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", held))
        other_program.listen()
        proc = _up(tmp_path, ports)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise AssertionError(f"started with port {held} taken") from None
    assert proc.returncode != 0, out
    assert str(held) in out and "in use" in out, out
    assert which in out if which == "filer gRPC" else "--api-port" in out, out
    assert not (tmp_path / "pg").exists()  # refused before anything started
